"""Cases settings: the shared ones plus the procedure's configuration (JSON in env vars,
or a mounted file in production)."""

from __future__ import annotations

import json
from typing import Any

from crm_runtime.settings import ServiceSettings
from pydantic import Field, field_validator


class CasesSettings(ServiceSettings):
    service_name: str = "cases"

    # (region, category) -> department/assignee; see cases.domain.routing.Routing.from_config.
    routing: dict[str, Any] = Field(default_factory=dict, validation_alias="CRM_CASES_ROUTING")
    # SLA targets per severity and region; see cases.domain.sla.SlaPolicies.from_config.
    sla_policies: dict[str, Any] = Field(default_factory=dict, validation_alias="CRM_CASES_SLA")
    # Region calendars: {"shenzhen": {"extra_holidays": ["2026-06-01"], "extra_workdays": [...],
    #                    "working_hours": ["09:00", "18:00"]}}
    calendars: dict[str, Any] = Field(default_factory=dict, validation_alias="CRM_CASES_CALENDARS")
    # Severity keyword edits per region; see cases.domain.severity.SeverityRules.merged.
    severity_overrides: dict[str, Any] = Field(default_factory=dict, validation_alias="CRM_CASES_SEVERITY_RULES")
    collective_min_customers: int = Field(5, validation_alias="CRM_CASES_COLLECTIVE_MIN_CUSTOMERS")
    collective_crisis_customers: int = Field(20, validation_alias="CRM_CASES_COLLECTIVE_CRISIS_CUSTOMERS")
    collective_window_hours: float = Field(24, validation_alias="CRM_CASES_COLLECTIVE_WINDOW_HOURS")
    # A dissatisfied return visit (score 1 or 2): "reopen" the case or open a "follow_up" case.
    dissatisfied_return_visit: str = Field("reopen", validation_alias="CRM_CASES_DISSATISFIED_RETURN_VISIT")
    # Contacts from intake are handled in batches of at most this many (what one Kafka
    # fetch returns): a backlog is opened with a few store commands per batch. 1,000, not
    # the runtime's 500: shared documents (queue parts, fact buckets) are rewritten once
    # per batch, so fewer batches halve that; a crash redelivers at most 1,000 (idempotent).
    contact_batch: int = Field(1000, ge=1, le=5000, validation_alias="CRM_CASES_CONTACT_BATCH")
    # A case write whose queue row was not moved after this long is finished by a repair
    # (its writer died in between); also how often the repair looks.
    queue_repair_after_s: float = Field(30.0, gt=0, validation_alias="CRM_CASES_QUEUE_REPAIR_AFTER_S")

    @field_validator("routing", "sla_policies", "calendars", "severity_overrides", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value
