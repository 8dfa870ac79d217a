"""Intake's settings: the shared ones plus channel configuration."""

from __future__ import annotations

import json
from typing import Any

from crm_runtime.settings import ServiceSettings
from pydantic import Field, field_validator


class IntakeSettings(ServiceSettings):
    service_name: str = "intake"

    # Forum software that pushes posts signs them with this shared secret (HMAC-SHA256).
    forum_webhook_secret: str = Field("dev-forum-secret", validation_alias="CRM_FORUM_WEBHOOK_SECRET")
    forum_webhook_max_age_s: int = Field(300, validation_alias="CRM_FORUM_WEBHOOK_MAX_AGE_S")

    # Letters: scans, PDFs and photos; each at most this big, these types only.
    attachment_max_bytes: int = Field(10 * 1024 * 1024, validation_alias="CRM_ATTACHMENT_MAX_BYTES")
    attachment_max_count: int = Field(10, validation_alias="CRM_ATTACHMENT_MAX_COUNT")

    # E-mailed letters arrive by SMTP; 0 turns the listener off.
    smtp_port: int = Field(0, validation_alias="CRM_INTAKE_SMTP_PORT")
    smtp_host: str = Field("127.0.0.1", validation_alias="CRM_INTAKE_SMTP_HOST")
    # Which region a letter mailbox belongs to: {"shenzhen@letters.example.cn": "shenzhen"};
    # otherwise the local part of the recipient address is taken as the region.
    smtp_mailboxes: dict[str, str] = Field(default_factory=dict, validation_alias="CRM_INTAKE_SMTP_MAILBOXES")

    # Per-region kind-hint keyword overrides (JSON): {"chengdu": {"add": {"repair": ["遭了"]}}};
    # the format is in intake.domain.kind_hint (KindKeywords.merged).
    kind_keyword_overrides: dict[str, Any] = Field(default_factory=dict,
                                                   validation_alias="CRM_KIND_KEYWORD_OVERRIDES")

    @field_validator("smtp_mailboxes", "kind_keyword_overrides", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value
