"""Surveys' settings: the shared ones plus the schedule policy and the signing secret."""

from __future__ import annotations

import json
from typing import Any

from crm_runtime.settings import ServiceSettings
from pydantic import Field, field_validator

from surveys.domain.schedule import Policy


class SurveysSettings(ServiceSettings):
    service_name: str = "surveys"

    # Signs the self-service links (/s/<token>); rotate it and every unanswered link stops working.
    link_secret: str = Field("dev-only-survey-link-secret-change-me", validation_alias="CRM_SURVEYS_LINK_SECRET")
    # Overrides of the schedule policy (JSON): {"quiet_days": 60, "case_visit_days": 5}; see
    # surveys.domain.schedule.Policy for every knob.
    policy_overrides: dict[str, Any] = Field(default_factory=dict, validation_alias="CRM_SURVEYS_POLICY")

    @field_validator("policy_overrides", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    @property
    def policy(self) -> Policy:
        return Policy(**self.policy_overrides)
