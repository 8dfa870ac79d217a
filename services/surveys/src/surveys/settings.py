"""Surveys' settings: the shared ones plus the schedule policy and the signing secret."""

from __future__ import annotations

import json
from typing import Any

from crm_runtime.settings import ServiceSettings
from pydantic import Field, field_validator

from surveys.domain.coverage import FORMS
from surveys.domain.schedule import Policy


class SurveysSettings(ServiceSettings):
    service_name: str = "surveys"

    # Signs the self-service links (/s/<token>); rotate it and every unanswered link stops working.
    link_secret: str = Field("dev-only-survey-link-secret-change-me", validation_alias="CRM_SURVEYS_LINK_SECRET")
    # Overrides of the schedule policy (JSON): {"quiet_days": 60, "case_visit_days": 5}; see
    # surveys.domain.schedule.Policy for every knob.
    policy_overrides: dict[str, Any] = Field(default_factory=dict, validation_alias="CRM_SURVEYS_POLICY")

    # A survey write whose worklist row was not moved after this long is finished by a
    # repair (its writer died in between); also how often the repair looks.
    worklist_repair_after_s: float = Field(30.0, gt=0, validation_alias="CRM_SURVEYS_WORKLIST_REPAIR_AFTER_S")
    # The form of each project or building for coverage by product type (the partner events
    # carry only the fit-out): {"项目A": "high_rise", "项目B|3": "villa"}; see domain.coverage.FORMS.
    product_forms: dict[str, str] = Field(default_factory=dict, validation_alias="CRM_SURVEYS_PRODUCT_FORMS")

    @field_validator("product_forms")
    @classmethod
    def _known_forms(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted({v for v in value.values() if v not in FORMS})
        if unknown:
            raise ValueError(f"unknown product forms {unknown}; known: {', '.join(FORMS)}")
        return value

    @field_validator("policy_overrides", "product_forms", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    @property
    def policy(self) -> Policy:
        return Policy(**self.policy_overrides)
