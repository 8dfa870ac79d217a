"""What every event payload shares."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class EventData(BaseModel):
    """Base of every payload: unknown fields are ignored, so a producer may add fields
    before its consumers know them (forward compatibility)."""

    model_config = ConfigDict(extra="ignore")


class Language(StrEnum):
    """Language a customer prefers for messages."""

    ZH_CN = "zh-CN"
    EN = "en"
