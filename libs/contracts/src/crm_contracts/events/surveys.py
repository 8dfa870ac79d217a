"""Produced by surveys: return visits (回访) and satisfaction surveys along the customer
journey, from scheduling to their answers."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, Self

from pydantic import Field, model_validator

from crm_contracts.events.common import EventData
from crm_contracts.fields import AwareDatetime, NonEmptyStr, Nps, Score


class SurveyKind(StrEnum):
    CASE_RETURN_VISIT = "case_return_visit"  # within a week of handling a complaint
    REPAIR_RETURN_VISIT = "repair_return_visit"
    SALES_RETURN_VISIT = "sales_return_visit"  # within a week of signing
    LIVING_3_MONTHS = "living_3_months"  # 嘘寒问暖
    INSPECTION_1_YEAR = "inspection_1_year"  # 承担责任
    ANNUAL = "annual"


_SUBJECT_OF_KIND = {
    SurveyKind.CASE_RETURN_VISIT: "case_id",
    SurveyKind.REPAIR_RETURN_VISIT: "work_order_id",
    SurveyKind.SALES_RETURN_VISIT: "contract_id",
}


class SurveyBase(EventData):
    """One survey of one customer, and what it is about."""

    survey_id: NonEmptyStr
    kind: SurveyKind
    customer_id: NonEmptyStr
    case_id: str | None = None
    work_order_id: str | None = None
    contract_id: str | None = None
    project: str | None = None
    building: str | None = None
    unit: str | None = None
    due_at: AwareDatetime
    # Additions to v1 (optional, so older producers and consumers stay valid).
    product_type: str | None = Field(
        default=None, description="The home's product type (for coverage), e.g. bare or finished."
    )
    campaign_id: str | None = Field(default=None, description="The annual campaign, if any.")

    @model_validator(mode="after")
    def _names_its_subject(self) -> Self:
        needed = _SUBJECT_OF_KIND.get(self.kind)
        if needed is not None and getattr(self, needed) is None:
            raise ValueError(f"a {self.kind.value} survey needs {needed}")
        return self


class SurveyScheduled(SurveyBase):
    """A survey is due; the customer is told a week before the visit."""

    notice_at: AwareDatetime | None = Field(default=None, description="When to tell the customer.")
    # Additions to v1.
    opens_at: AwareDatetime | None = Field(
        default=None, description="From when the visit may be made; due_at is its deadline."
    )
    expires_at: AwareDatetime | None = Field(
        default=None, description="After this the survey expires unanswered."
    )
    definition_version: int | None = Field(default=None, ge=1, description="The questions it asks.")
    answer_path: str | None = Field(
        default=None,
        description="The self-service page (/s/<signed single-use token>) to send the customer.",
    )
    reminder: int = Field(
        default=0, ge=0, description="0 when first scheduled; n for the n-th reminder to answer."
    )


class ExclusionReason(StrEnum):
    MAJOR_COMPLAINT = "major_complaint"
    RENOVATING = "renovating"
    NOT_MOVED_IN = "not_moved_in"
    NO_CONSENT = "no_consent"
    ALREADY_SURVEYED = "already_surveyed"
    OTHER = "other"


class SurveyExcluded(SurveyBase):
    """The customer will not be surveyed: e.g. no 3-month visit after a major complaint,
    while renovating, or before moving in."""

    reason: ExclusionReason
    detail: str | None = None


class SurveyCompleted(SurveyBase):
    """The customer answered. `satisfied` is an overall 4 or 5, `dissatisfied` a 1 or 2;
    they feed the satisfaction and complaint-share KPIs."""

    scores: dict[str, Score] = Field(description="Question id -> answer on the 1-5 scale.")
    nps: Nps | None = None
    satisfied: bool
    dissatisfied: bool
    method: Literal["phone", "home_visit", "online"] | None = None
    comment: str | None = None
    completed_at: AwareDatetime
    # Additions to v1.
    definition_version: int | None = Field(default=None, ge=1, description="The questions answered.")
    answers: dict[str, str] = Field(
        default_factory=dict, description="Single-choice answers: question id -> option id."
    )

    @model_validator(mode="after")
    def _not_both(self) -> Self:
        if self.satisfied and self.dissatisfied:
            raise ValueError("a survey cannot be both satisfied and dissatisfied")
        return self


class SurveyExpired(SurveyBase):
    """The survey's window closed without an answer."""

    expired_at: AwareDatetime
