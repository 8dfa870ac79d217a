from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class OutboundMessage:
    message_id: str              # our ledger id; the provider's client reference (SMS OutId)
    channel: str                 # "sms" | "email" | "letter"
    region: str
    language: str                # "zh-CN" | "en"
    to: str                      # phone (sms), e-mail address (email), or "" for letters
    template_code: str           # our template id, e.g. "case.acknowledged"
    params: dict[str, str]       # the template's placeholder values
    subject: str                 # rendered subject ("" for sms)
    body: str                    # rendered text
    postal_address: str | None = None   # letters only
    recipient_name: str | None = None   # letters/e-mail salutation

@dataclass(frozen=True)
class SendResult:
    accepted: bool               # the provider took it (not yet delivered)
    provider_ref: str | None = None   # provider's id (SMS BizId)
    permanent: bool = False      # not accepted and retrying will not help (bad number, blacklisted)
    error: str | None = None

@dataclass(frozen=True)
class Receipt:                   # a delivery report, parsed from the provider's callback
    out_id: str                  # our message_id
    delivered: bool
    error: str | None
    reported_at: datetime

@dataclass(frozen=True)
class Reply:                     # a customer's SMS reply (uplink), e.g. "TD" to unsubscribe
    phone: str
    content: str
    received_at: datetime
    sign_name: str | None = None

class Gateway(Protocol):
    async def send(self, message: OutboundMessage) -> SendResult: ...
    async def close(self) -> None: ...

class TimeoutUnknown(Exception):
    """The provider did not answer in time: the message may or may not have been accepted.
    The caller must not re-send; it reconciles from receipts (or a query) instead."""
