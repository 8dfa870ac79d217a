"""The dashboard page (until the console lands): served by reporting, no internet needed."""

from __future__ import annotations

from fastapi import APIRouter


def build_router() -> APIRouter:
    return APIRouter()
