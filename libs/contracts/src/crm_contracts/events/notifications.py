"""Produced by notifications: what was sent to whom, or why it could not be."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from crm_contracts.events.common import EventData, Language
from crm_contracts.fields import AwareDatetime, NonEmptyStr


class NotificationChannel(StrEnum):
    SMS = "sms"
    EMAIL = "email"
    LETTER = "letter"
    STAFF = "staff"  # a member of staff, in the console


class NotificationBase(EventData):
    """One message to a customer (by id) or a member of staff, and the event that caused it."""

    notification_id: NonEmptyStr
    customer_id: str | None = None
    staff_recipient: str | None = Field(default=None, description="Staff user id.")
    channel: NotificationChannel
    template: NonEmptyStr = Field(description="Template id, e.g. milestone.topped_out.")
    language: Language
    cause_event_id: NonEmptyStr = Field(description="The id of the event that caused it.")
    case_id: str | None = None
    survey_id: str | None = None

    @model_validator(mode="after")
    def _has_recipient(self) -> Self:
        if self.customer_id is None and self.staff_recipient is None:
            raise ValueError("a notification needs a customer_id or a staff_recipient")
        return self


class NotificationSent(NotificationBase):
    """The provider accepted the message."""

    sent_at: AwareDatetime


class NotificationFailed(NotificationBase):
    """The message could not be sent (yet): no consent, no address, or the provider failed."""

    error: NonEmptyStr
    failed_at: AwareDatetime
    attempts: int = Field(default=1, ge=1)
    will_retry: bool = False
