"""Reporting's settings: the shared ones plus targets and batch size."""

from __future__ import annotations

import json
from typing import Any

from crm_runtime.settings import ServiceSettings
from pydantic import Field, field_validator


class ReportingSettings(ServiceSettings):
    service_name: str = "reporting"

    # Per-region KPI targets overriding the defaults (JSON): {"shenzhen": {"repair_satisfaction": 0.9}}.
    targets: dict[str, dict[str, float]] = Field(default_factory=dict, validation_alias="CRM_REPORTING_TARGETS")
    # Events per batch: one read and one write of each touched document per batch.
    batch_max_records: int = Field(500, validation_alias="CRM_REPORTING_BATCH_MAX_RECORDS")

    @field_validator("targets", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value


def consumer_group_for(settings: ServiceSettings, generation: str) -> str:
    """Each generation of read models has its own consumer group: one writer per partition."""
    return settings.consumer_group if generation == "g1" else f"{settings.consumer_group}-{generation}"
