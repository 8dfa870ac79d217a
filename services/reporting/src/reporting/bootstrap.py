"""Wiring of the reporting service: settings, adapters and subscriptions, built on demand
(`uvicorn --factory reporting.bootstrap:create_app`); nothing runs at import time."""

from __future__ import annotations

from crm_runtime.app import ServiceContext, Wiring, create_service_app
from crm_runtime.settings import ServiceSettings
from fastapi import FastAPI


class Settings(ServiceSettings):
    service_name: str = "reporting"


def wire(ctx: ServiceContext) -> Wiring:
    return Wiring()


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or Settings(),
        title="CRM reporting",
        description=__doc__ or "",
        wire=wire,
    )
