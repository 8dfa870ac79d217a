"""Produced by cases: one event per step of the nine-step complaint procedure
(受理, 确认, 评估, 调查, 处理, 回复, 跟踪关闭, 回访, 信息反馈), plus SLA breaches and
collective incidents.

Every case event carries the case's identity and its status after the step, so a consumer
that only needs "where is the case now" can read any one of them.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from crm_contracts.events.common import EventData
from crm_contracts.events.intake import ContactChannel, KindHint
from crm_contracts.fields import AwareDatetime, NonEmptyStr, RegionCode

CASE_NUMBER_PATTERN = r"^[A-Z]{2}-[0-9]{4}-[0-9]{6,}$"


class CaseStatus(StrEnum):
    """Where a case stands in the procedure."""

    OPEN = "open"  # received (受理), not yet judged valid
    VALIDATED = "validated"  # a valid complaint, awaiting its severity and procedure
    CLASSIFIED = "classified"  # severity and procedure decided (确认)
    ASSIGNED = "assigned"  # a department owns it
    IN_PROGRESS = "in_progress"  # investigated and handled (调查, 处理)
    RESOLVED = "resolved"  # handled; waiting for the customer to confirm (回复)
    CONFIRMED = "confirmed"  # the customer accepted the result
    CLOSED = "closed"  # archived (跟踪关闭); invalid complaints and consultations too


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
    """一般投诉处理流程 / 重大投诉流程 / 危机事件处理流程."""

    GENERAL_COMPLAINT = "general_complaint"
    MAJOR_COMPLAINT = "major_complaint"
    CRISIS_EVENT = "crisis_event"


class CaseCategory(StrEnum):
    """What the complaint is about; the departments and the satisfaction survey use the same
    dimensions."""

    ENGINEERING_QUALITY = "engineering_quality"
    SALES_SERVICE = "sales_service"
    CUSTOMER_SERVICE = "customer_service"
    PROPERTY_MANAGEMENT = "property_management"
    PLANNING_DESIGN = "planning_design"
    AMENITIES = "amenities"
    OTHER = "other"


class CaseEventBase(EventData):
    """Shared by every case event: the case's identity and its status after this step."""

    case_id: NonEmptyStr
    case_number: str = Field(
        pattern=CASE_NUMBER_PATTERN, description="Human-readable, e.g. SZ-2026-000123."
    )
    region: RegionCode
    customer_id: str | None = None
    contact_ids: list[NonEmptyStr] = Field(default_factory=list)
    status: CaseStatus
    occurred_at: AwareDatetime
    actor: str | None = Field(default=None, description="Staff user id; absent for the system.")


class CaseOpened(CaseEventBase):
    """A contact became a case (受理)."""

    kind: KindHint = Field(description="The kind the contact was taken as.")
    severity: Severity = Severity.GENERAL
    category: CaseCategory | None = Field(default=None, description="Known once classified.")
    channel: ContactChannel
    title: str | None = Field(default=None, description="One line for queues and notices.")
    project: str | None = None
    building: str | None = None
    unit: str | None = None
    opened_at: AwareDatetime


class CaseValidated(CaseEventBase):
    """The case was screened: a valid complaint, an invalid one, or a consultation.

    Invalid complaints and consultations are explained to the customer and closed.
    """

    validity: Validity
    note: str | None = None


class CaseClassified(CaseEventBase):
    """Severity, category and procedure were decided (确认)."""

    severity: Severity
    category: CaseCategory
    procedure: Procedure


class CaseAssigned(CaseEventBase):
    """A department (and maybe a person) owns the case from now on."""

    department: NonEmptyStr
    assignee: str | None = None


class CaseEscalated(CaseEventBase):
    """The case was raised to a higher level (e.g. a major complaint or crisis)."""

    reason: NonEmptyStr
    severity: Severity | None = Field(default=None, description="The new severity, if it changed.")
    escalated_to: str | None = Field(default=None, description="Department or role now involved.")


class CaseProgressReported(CaseEventBase):
    """The case owner told the customer how things stand (the customer's right to know)."""

    message: NonEmptyStr = Field(description="The message sent to the customer.")


class CaseResolved(CaseEventBase):
    """Handling is done; the customer is asked to confirm the result."""

    resolution: NonEmptyStr
    department: str | None = None


class CaseCustomerConfirmed(CaseEventBase):
    """The customer accepted, or refused, the result."""

    accepted: bool
    comment: str | None = None


class CaseClosed(CaseEventBase):
    """The case was closed and archived; carries what reports and return visits need."""

    validity: Validity | None = None
    severity: Severity | None = None
    category: CaseCategory | None = None
    department: str | None = None
    reason: str | None = Field(default=None, description="Why it closed, in words.")


class CaseReopened(CaseEventBase):
    """A closed or resolved case was opened again (e.g. a dissatisfied return visit)."""

    reason: NonEmptyStr
    survey_id: str | None = Field(default=None, description="The survey that caused it, if any.")


class CaseSlaBreached(CaseEventBase):
    """A deadline of the case passed before its step was done."""

    clock: NonEmptyStr = Field(description="Which deadline, e.g. first_reply, resolution.")
    due_at: AwareDatetime
    department: str | None = None
    assignee: str | None = None


class CaseLessonRecorded(CaseEventBase):
    """The feedback step (信息反馈): the process flaw behind the complaint and the fix."""

    root_cause: NonEmptyStr
    responsible_department: NonEmptyStr
    improvement: NonEmptyStr


class IncidentSignal(StrEnum):
    """What made cases a collective incident (crisis early warning)."""

    COLLECTIVE_COMPLAINT = "collective_complaint"  # 集体投诉
    MEDIA_EXPOSURE = "media_exposure"  # 媒体曝光
    CASUALTIES = "casualties"  # 人员伤亡


class CollectiveIncidentDetected(EventData):
    """Many cases about one matter, or media attention: senior management, the property
    company and lawyers must be pulled in fast."""

    incident_id: NonEmptyStr
    region: RegionCode
    project: str | None = None
    building: str | None = None
    signal: IncidentSignal
    severity: Severity = Severity.CRISIS
    category: CaseCategory | None = None
    case_ids: list[NonEmptyStr] = Field(min_length=1)
    contact_count: int = Field(ge=0, description="Contacts behind these cases.")
    reason: NonEmptyStr = Field(description="What the detection saw, in words.")
    detected_at: AwareDatetime
