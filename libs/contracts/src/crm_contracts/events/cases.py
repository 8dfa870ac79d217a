"""Produced by cases: one event per step of the nine-step complaint procedure
(受理, 确认, 评估, 调查, 处理, 回复, 跟踪关闭, 回访, 信息反馈), SLA breaches and collective
incidents.

Every case event carries the case's identity and its state after the step (status,
severity, category, owner), so a consumer that only needs "where is the case now" can
read any one of them. The types of docs/architecture.md come first; the steps it does not name
(assessment, investigation, ...) follow as additions to v1.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from crm_contracts.events.common import EventData
from crm_contracts.events.intake import ContactChannel, KindHint
from crm_contracts.fields import AwareDatetime, NonEmptyStr, RegionCode

CASE_NUMBER_PATTERN = r"^[A-Z]{2,4}-[0-9]{4}-[0-9]{6,}$"


class CaseStatus(StrEnum):
    """Where a case stands in the procedure."""

    RECEIVED = "received"  # 受理: recorded, not yet screened
    VALIDATED = "validated"  # a valid complaint
    CLASSIFIED = "classified"  # 确认: severity, category and procedure decided
    ASSESSED = "assessed"  # 评估: nature and influence judged
    INVESTIGATING = "investigating"  # 调查
    HANDLING = "handling"  # 处理
    RESOLVED = "resolved"  # 回复: waiting for the customer's and the department's approval
    CLOSED = "closed"  # 跟踪关闭: archived; invalid complaints and consultations too
    LESSON_RECORDED = "lesson_recorded"  # 信息反馈: the improvement is recorded


class Validity(StrEnum):
    """The intake screening (有效 / 无效 / 咨询)."""

    VALID = "valid"
    INVALID = "invalid"
    CONSULTATION = "consultation"


class Severity(StrEnum):
    """一般 / 重大 / 危机: decides the procedure and who is pulled in."""

    GENERAL = "general"
    MAJOR = "major"
    CRISIS = "crisis"


class Procedure(StrEnum):
    """一般投诉处理流程 / 重大投诉处理流程 / 危机事件处理流程."""

    GENERAL_COMPLAINT = "general_complaint"
    MAJOR_COMPLAINT = "major_complaint"
    CRISIS_EVENT = "crisis_event"


class CaseCategory(StrEnum):
    """What the complaint is about, by the department whose work it concerns."""

    ENGINEERING_QUALITY = "engineering_quality"
    SALES_SERVICE = "sales_service"
    CUSTOMER_SERVICE = "customer_service"
    PROPERTY_MANAGEMENT = "property_management"
    DESIGN = "design"
    OTHER = "other"


class CloseOutcome(StrEnum):
    """How a case ended."""

    RESOLVED = "resolved"  # handled and closed after the customer's confirmation
    INVALID = "invalid"  # screened as an invalid complaint
    CONSULTATION = "consultation"  # a consultation, answered
    FORCED = "forced"  # closed by a supervisor before the procedure was complete


class CaseEventBase(EventData):
    """Shared by every case event: the case's identity and its state after this step."""

    case_id: NonEmptyStr
    case_number: str = Field(
        pattern=CASE_NUMBER_PATTERN, description="Human-readable, e.g. SZ-2026-000123."
    )
    region: RegionCode
    customer_id: str | None = None
    contact_ids: list[NonEmptyStr] = Field(default_factory=list)
    status: CaseStatus
    severity: Severity | None = Field(
        default=None, description="Current severity; the automatic proposal until classified."
    )
    category: CaseCategory | None = Field(
        default=None, description="Current category; the automatic proposal until classified."
    )
    department: str | None = Field(default=None, description="The owning department.")
    assignee: str | None = Field(default=None, description="The owning member of staff.")
    waiting_for_customer: bool = Field(
        default=False, description="SLA clocks are paused while the customer is awaited."
    )
    sequence: int | None = Field(
        default=None, ge=1, description="1, 2, ... per case: the order of the case's events."
    )
    occurred_at: AwareDatetime
    actor: str | None = Field(default=None, description="Staff user id, or 'system'.")


class SeverityProposal(EventData):
    """The automatic severity and category guess made when the case opened."""

    severity: Severity
    category: CaseCategory
    reasons: list[str] = Field(default_factory=list)


class CaseOpened(CaseEventBase):
    """A contact became a case (受理)."""

    contact_id: str | None = Field(default=None, description="The contact that opened it.")
    channel: ContactChannel
    kind_hint: KindHint | None = None
    title: str | None = Field(default=None, description="One line for queues and notices.")
    project: str | None = None
    building: str | None = None
    unit: str | None = None
    received_at: AwareDatetime | None = Field(
        default=None, description="When the contact reached us: SLA clocks start here."
    )
    opened_at: AwareDatetime | None = Field(
        default=None, description="When the case was opened; occurred_at when not sent."
    )
    severity_proposal: SeverityProposal | None = None

    @model_validator(mode="after")
    def _opened_at_defaults_to_occurred_at(self) -> Self:
        if self.opened_at is None:
            self.opened_at = self.occurred_at
        return self


class CaseValidated(CaseEventBase):
    """The case was screened: a valid complaint, an invalid one, or a consultation.

    Invalid complaints and consultations are explained to the customer and closed.
    """

    outcome: Validity
    explanation: str | None = Field(default=None, description="What the customer is told.")


class CaseClassified(CaseEventBase):
    """Severity, category and procedure were decided (确认), or the severity changed later
    (a supervisor's override, a collective incident)."""

    severity: Severity
    category: CaseCategory
    procedure: Procedure | None = Field(
        default=None, description="Absent while the severity is raised before classification."
    )
    previous_severity: Severity | None = None
    override: bool = Field(default=False, description="A supervisor overrode the severity.")
    confirmed: bool = Field(default=True, description="False: still the automatic proposal.")
    reason: str | None = None


class CaseAssigned(CaseEventBase):
    """A department (and maybe a person) owns the case from now on."""

    department: NonEmptyStr
    assignee: str | None = None
    reassigned: bool = False
    previous_department: str | None = None
    previous_assignee: str | None = None
    reason: str | None = None
    source: str | None = Field(default=None, description="Which routing rule chose the owner.")


class CaseEscalated(CaseEventBase):
    """The case was raised to a higher level (a major complaint, a crisis, a breached SLA)."""

    reason: NonEmptyStr
    escalated_to: str | None = Field(default=None, description="Department or role now involved.")


class CaseProgressReported(CaseEventBase):
    """The case owner told the customer how things stand (the customer's right to know)."""

    message_to_customer: NonEmptyStr
    first_reply: bool = Field(default=False, description="The first reply: stops that SLA clock.")


class CaseResolved(CaseEventBase):
    """Handling is done; the customer is asked to confirm the result."""

    summary: NonEmptyStr


class CaseCustomerConfirmed(CaseEventBase):
    """The customer accepted, or refused, the result."""

    accepted: bool
    comment: str | None = None


class CaseClosed(CaseEventBase):
    """The case was closed and archived."""

    outcome: CloseOutcome
    forced: bool = False
    reason: str | None = None
    checklist: dict[str, bool] = Field(
        default_factory=dict, description="Closure checks (customer accepted, records complete...)."
    )


class CaseReopened(CaseEventBase):
    """A resolved or closed case was opened again (e.g. the problem came back)."""

    reason: NonEmptyStr
    previous_status: CaseStatus | None = None


class CaseSlaBreached(CaseEventBase):
    """A deadline of the case passed before its step was done."""

    clock: NonEmptyStr = Field(
        description="Which deadline: first_reply, progress_update, resolution or on_site."
    )
    due_at: AwareDatetime


class CaseLessonRecorded(CaseEventBase):
    """The feedback step (信息反馈): the process flaw behind the complaint and the fix."""

    root_cause: NonEmptyStr
    responsible_department: NonEmptyStr
    improvement: NonEmptyStr


class CollectiveIncidentDetected(EventData):
    """Several customers complain about one matter at once (集体投诉), or the media is
    involved: the crisis early warning. Senior management, the property company and
    lawyers must be pulled in fast. Published again when the incident grows in severity."""

    incident_id: NonEmptyStr
    region: RegionCode
    project: NonEmptyStr
    building: str | None = None
    category: CaseCategory
    severity: Severity
    customer_count: int = Field(ge=0, description="Distinct customers complaining.")
    contact_ids: list[NonEmptyStr] = Field(default_factory=list)
    case_ids: list[NonEmptyStr] = Field(default_factory=list)
    channels: list[ContactChannel] = Field(default_factory=list)
    mentions_media: bool = False
    reasons: list[str] = Field(default_factory=list)
    window_start: AwareDatetime
    window_end: AwareDatetime
    occurred_at: AwareDatetime
    actor: str | None = None


# -- additions: the steps docs/architecture.md does not name ----------------------------


class CaseContactAttached(CaseEventBase):
    """A further contact about the same open matter joined the case."""

    contact_id: NonEmptyStr


class CaseAssessed(CaseEventBase):
    """评估: the nature and influence of the complaint were judged."""

    nature: str | None = None
    influence: str | None = None
    notes: str | None = None


class CaseInvestigationStarted(CaseEventBase):
    """调查 began."""


class CaseFindingsRecorded(CaseEventBase):
    """The investigation found who and what caused the complaint, with evidence."""

    responsible_department: str | None = None
    responsible_post: str | None = None
    responsible_person: str | None = Field(default=None, description="A member of staff.")
    root_cause: str | None = None
    evidence_attachment_ids: list[str] = Field(default_factory=list)


class CaseLegalOpinionRecorded(CaseEventBase):
    """The legal department gave its opinion (the text stays inside the cases service)."""


class CaseHandlingStarted(CaseEventBase):
    """处理 began, following a plan."""

    plan: str | None = None


class CaseDepartmentApproved(CaseEventBase):
    """The departments involved approved the handling (needed to close)."""

    note: str | None = None


class CaseWaitingForCustomer(CaseEventBase):
    """The case waits for the customer; SLA clocks pause."""

    reason: str | None = None


class CaseCustomerResponded(CaseEventBase):
    """The awaited customer answered; SLA clocks resume."""


class CaseOnSiteResponded(CaseEventBase):
    """Someone went on site; stops the on-site clock."""

    details: str | None = None


class CaseCollectiveLinked(CaseEventBase):
    """The case was grouped under a collective incident."""

    incident_id: NonEmptyStr
