"""Inbound events published by integration partners: the sales CRM/ERP, project management,
the repair/work-order system, the call-centre telephony and the online forum.

These carry personal data (names, phones) because partners send it; the platform's own
events refer to customers by id only.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from crm_contracts.events.common import EventData, Language
from crm_contracts.fields import AwareDatetime, DurationSeconds, NonEmptyStr, OptionalPhone, Phone


class UnitRef(BaseModel):
    """One home: project (楼盘), building (栋) and unit (户)."""

    model_config = ConfigDict(extra="ignore")

    project: NonEmptyStr
    building: NonEmptyStr
    unit: NonEmptyStr


class Consent(BaseModel):
    """Per-channel consent to receive messages (PIPL): nothing is sent without it."""

    model_config = ConfigDict(extra="ignore")

    sms: bool = False
    email: bool = False
    letter: bool = False


class CustomerUpserted(EventData):
    """The partner's customer archive (客户档案) created or changed one customer.

    Always the whole record: the newest event replaces what a consumer knew.
    """

    customer_id: NonEmptyStr
    name: NonEmptyStr
    phones: list[NonEmptyStr] = Field(default_factory=list)
    email: str | None = None
    birthday: date | None = None
    preferred_language: Language = Language.ZH_CN
    consent: Consent = Field(default_factory=Consent)
    units: list[UnitRef] = Field(default_factory=list)


class SalesSpecialist(BaseModel):
    """The customer specialist (客户专员) assigned to a buyer."""

    model_config = ConfigDict(extra="ignore")

    name: NonEmptyStr
    phone: Phone


class ContractSigned(EventData):
    """A buyer signed the purchase contract: starts the sales return visit and the
    specialist's welcome message."""

    contract_id: NonEmptyStr
    customer_id: NonEmptyStr
    project: NonEmptyStr
    project_name: str | None = Field(default=None, description="Display name for messages.")
    building: NonEmptyStr
    unit: NonEmptyStr
    signed_at: AwareDatetime
    specialist: SalesSpecialist | None = None


class Milestone(StrEnum):
    """Construction milestones every buyer is told about while waiting for the home."""

    TOPPED_OUT = "topped_out"  # 封顶
    FRAME_REMOVED = "frame_removed"  # 落架
    LANDSCAPING_STARTED = "landscaping_started"  # 园建开始
    SITE_OPEN_DAY = "site_open_day"  # 工地开放日
    DELIVERY = "delivery"  # 交付


class MilestoneReached(EventData):
    """A project (or one building of it) reached a milestone: owners get a progress notice."""

    milestone_id: NonEmptyStr
    project: NonEmptyStr
    project_name: str | None = Field(default=None, description="Display name for messages.")
    building: str | None = Field(default=None, description="Absent: the whole project.")
    milestone: Milestone
    occurred_at: AwareDatetime


class FitOut(StrEnum):
    """How a home is handed over: bare shell (毛坯) or finished."""

    BARE = "bare"
    FINISHED = "finished"


class UnitDelivered(EventData):
    """The keys of one home were handed over to its owner."""

    customer_id: NonEmptyStr
    project: NonEmptyStr
    building: NonEmptyStr
    unit: NonEmptyStr
    delivered_at: AwareDatetime
    fit_out: FitOut


class Occupancy(StrEnum):
    """Whether the owner lives in the home; decides the 3-month living visit."""

    NOT_MOVED_IN = "not_moved_in"
    RENOVATING = "renovating"
    OCCUPIED = "occupied"


class OccupancyChanged(EventData):
    """The property company recorded a change of occupancy of one home."""

    customer_id: NonEmptyStr
    project: NonEmptyStr
    building: NonEmptyStr
    unit: NonEmptyStr
    occupancy: Occupancy
    changed_at: AwareDatetime


class RepairCategory(StrEnum):
    LEAK = "leak"
    DOOR_WINDOW = "door_window"
    WALL = "wall"
    PLUMBING = "plumbing"
    ELECTRICAL = "electrical"
    OTHER = "other"


class RepairWorkOrderCompleted(EventData):
    """The repair system closed a work order (返修): starts the repair return visit and
    counts towards repair and leak KPIs."""

    work_order_id: NonEmptyStr
    customer_id: NonEmptyStr
    project: NonEmptyStr
    building: NonEmptyStr
    unit: NonEmptyStr
    category: RepairCategory
    completed_at: AwareDatetime
    case_id: str | None = Field(default=None, description="The case that asked for the repair.")


class HotlineCallRecorded(EventData):
    """The call-centre telephony recorded a hotline call, with the agent's summary."""

    call_id: NonEmptyStr
    caller_phone: Phone
    started_at: AwareDatetime
    duration_s: DurationSeconds
    agent_id: str | None = None
    summary: str
    recording_url: str | None = None


class ForumPostPublished(EventData):
    """A post appeared on the developer's public complaint forum."""

    post_id: NonEmptyStr
    author: NonEmptyStr = Field(description="The forum user name.")
    author_phone: OptionalPhone = None
    title: str
    body: str
    url: NonEmptyStr
    published_at: AwareDatetime
