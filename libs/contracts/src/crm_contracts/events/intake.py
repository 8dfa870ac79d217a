"""Produced by intake: every contact, from every channel, as one event."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from crm_contracts.events.common import EventData
from crm_contracts.fields import AwareDatetime, NonEmptyStr, RegionCode


class ContactChannel(StrEnum):
    """Where a customer reached us (投诉受理渠道)."""

    HOTLINE = "hotline"
    FORUM = "forum"
    FRONT_DESK = "front_desk"
    LETTER = "letter"


class LetterForm(StrEnum):
    """How a letter-channel contact arrived (信函/传真/邮件)."""

    POST = "post"
    FAX = "fax"
    EMAIL = "email"


class CustomerMatch(StrEnum):
    """How sure intake is that `customer_id` is the person who contacted us."""

    EXACT = "exact"
    PROBABLE = "probable"
    UNKNOWN = "unknown"


class KindHint(StrEnum):
    """Intake's guess at the kind of contact; the validating agent confirms or corrects it."""

    COMPLAINT = "complaint"
    CONSULTATION = "consultation"
    SUGGESTION = "suggestion"
    REPAIR = "repair"
    PRAISE = "praise"


class Attachment(BaseModel):
    """A file that came with the contact, stored by intake: the event carries its id, never
    the bytes (fetch it from intake's HTTP API)."""

    model_config = ConfigDict(extra="ignore")

    attachment_id: NonEmptyStr
    filename: str
    content_type: str
    size: int = Field(ge=0, description="Bytes; 0 when unknown (e.g. a recording held elsewhere).")
    url: str | None = Field(default=None, description="Where the partner holds it, if not intake.")


class ReplyTo(BaseModel):
    """How to answer someone the customer directory does not know yet.

    Only set for a provisional customer, whose details exist nowhere else: the one
    exception to "ids, not personal data" in platform events (PIPL: the minimum to reply).
    """

    model_config = ConfigDict(extra="ignore")

    phone: str | None = None
    email: str | None = None


class ContactReceived(EventData):
    """A customer contacted us through any channel; nothing a customer says may be lost.

    Recorded once per source (a repeated call id or post id is the same contact).
    """

    contact_id: NonEmptyStr
    channel: ContactChannel
    letter_form: LetterForm | None = Field(default=None, description="Only for channel=letter.")
    source_ref: NonEmptyStr = Field(
        description="The channel's own reference: call_id, post_id, letter number or contact_id."
    )
    region: RegionCode
    project: str | None = None
    building: str | None = None
    unit: str | None = None
    customer_id: str | None = Field(
        default=None, description="Directory customer, or a provisional id for an unknown caller."
    )
    customer_match: CustomerMatch
    kind_hint: KindHint
    kind_confidence: float | None = Field(
        default=None, ge=0, le=1, description="How sure the kind hint is: 0 means unclassified."
    )
    subject: str
    body: str
    attachments: list[Attachment] = Field(default_factory=list)
    received_at: AwareDatetime
    duplicate_of: str | None = Field(
        default=None,
        description="An earlier contact_id this one repeats (same customer, same matter).",
    )
    reply_to: ReplyTo | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.customer_match is not CustomerMatch.UNKNOWN and self.customer_id is None:
            raise ValueError(f"customer_match={self.customer_match.value} needs a customer_id")
        if self.letter_form is not None and self.channel is not ContactChannel.LETTER:
            raise ValueError("letter_form is only for channel=letter")
        return self
