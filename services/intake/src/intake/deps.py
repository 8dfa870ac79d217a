"""The dependencies intake's use cases receive, built once in bootstrap.

The stores and gateways are named by what the use cases need of them (the protocols
below), so unit tests hand the handlers in-memory fakes and the service hands them
MongoDB and Prometheus.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from crm_contracts.events.intake import ContactReceived
from crm_runtime.app import ServiceContext
from crm_runtime.outbox import OutgoingEvent

from intake.domain.contacts import EarlierContact
from intake.domain.customers import DirectoryEntry
from intake.domain.kind_hint import KindKeywords
from intake.settings import IntakeSettings


class ContactStore(Protocol):
    async def get(self, contact_id: str) -> dict[str, Any] | None:
        """The contact as staff see it (`contact_id`, no storage fields), or None."""

    async def recent_for_customer(self, customer_id: str, since: datetime) -> list[EarlierContact]: ...

    def first_of_customer(self, customer_id: str) -> None:
        """The customer was created just now: it has no earlier contacts (nothing to read)."""

    async def insert(self, contact: ContactReceived, events: list[OutgoingEvent], *, normalised_text: str,
                     idempotency_key: str | None) -> bool:
        """Store the contact and its events in one write; False if it already exists."""


class Directory(Protocol):
    async def candidates(self, keys: list[str]) -> list[DirectoryEntry]: ...
    async def get(self, customer_id: str) -> DirectoryEntry | None: ...
    async def save(self, entry: DirectoryEntry) -> bool:
        """Upsert an entry and its keys; True if the customer was new."""
    async def save_many(self, entries: list[DirectoryEntry]) -> list[str]: ...
    async def merge_provisional_many(self, entries: list[DirectoryEntry],
                                     existing_keys: list[str] | None = None) -> dict[str, list[str]]: ...


class Attachments(Protocol):
    async def put(self, filename: str, content_type: str, data: bytes, *, contact_id: str) -> Any: ...
    async def get(self, attachment_id: str) -> tuple[dict[str, Any], bytes] | None: ...


class Metrics(Protocol):
    """What staff watch on /metrics besides the technical series."""

    def contact_recorded(self, contact: ContactReceived, *, new_provisional_customer: bool) -> None: ...
    def letter_refused(self, reason: str) -> None: ...


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class IntakeDeps:
    ctx: ServiceContext  # the broker, for the partner gateway; handlers do not use it
    settings: IntakeSettings
    contacts: ContactStore
    directory: Directory
    attachments: Attachments
    keywords_for: Callable[[str], KindKeywords]
    known_region: Callable[[str], bool]
    metrics: Metrics
    now: Callable[[], datetime] = field(default=_now)
