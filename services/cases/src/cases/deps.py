"""The dependency bag every cases handler receives (`CasesDeps`), and the ports it holds.

Handlers see the stores through these protocols, so their unit tests run on in-memory
fakes (tests/unit/fakes.py) and the MongoDB repositories (adapters/store.py,
adapters/worklist.py) are one implementation among two.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from crm_runtime.outbox import OutgoingEvent

from cases.adapters.metrics import CasesMetrics
from cases.domain.calendar import BusinessCalendar
from cases.domain.collective import CollectiveRules, ContactFact
from cases.domain.procedure import Case
from cases.domain.routing import Routing
from cases.domain.severity import SeverityRules
from cases.domain.sla import SlaPolicies


class CaseStore(Protocol):
    async def get(self, case_id_or_number: str) -> Case | None: ...
    async def get_with_rev(self, case_id_or_number: str) -> tuple[Case, int] | None: ...
    async def exists(self, case_id: str) -> bool: ...
    async def insert(self, case: Case, events: list[OutgoingEvent]) -> bool: ...
    async def save(self, case: Case, rev: int, events: list[OutgoingEvent]) -> None: ...
    async def open_cases_of(self, customer_id: str) -> list[Case]: ...
    async def allocate_number(self, region: str, year: int, case_id: str) -> str: ...
    async def queue(self, filters: dict[str, Any], *, regions: list[str], due_before: datetime | None,
                    after: tuple[datetime, str] | None, limit: int) -> list[dict[str, Any]]: ...


class ContactStore(Protocol):
    """The contacts cases has seen (a document per contact, with its revision)."""

    async def get(self, contact_id: str) -> dict[str, Any] | None: ...
    async def record(self, contact: dict[str, Any]) -> None: ...
    async def change(self, contact_id: str,
                     change: Callable[[dict[str, Any] | None], dict[str, Any] | None]) -> dict[str, Any] | None: ...
    async def mark_handled(self, contact_id: str, case_id: str | None, status: str | None) -> None: ...
    async def add_fact(self, query_key: str, contact: dict[str, Any]) -> None: ...
    async def facts(self, query_key: str, since: datetime, until: datetime) -> list[ContactFact]: ...


class Worklist(Protocol):
    """Contacts that opened no case, listed by region, status and day."""

    async def place(self, row: dict[str, Any], previous: Iterable[str] = ()) -> None: ...
    async def page(self, *, regions: list[str], statuses: list[str], kind: str | None,
                   after: tuple[Any, ...] | None, limit: int) -> list[dict[str, Any]]: ...


class IncidentStore(Protocol):
    async def upsert(self, incident: dict[str, Any], events: list[OutgoingEvent]) -> None: ...


class TimerPort(Protocol):
    async def schedule(self, timer_id: str, kind: str, due_at: datetime, payload: dict[str, Any]) -> None: ...
    async def cancel(self, timer_id: str) -> None: ...


@dataclass
class CasesDeps:
    cases: CaseStore
    contacts: ContactStore
    worklist: Worklist
    incidents: IncidentStore
    timers: TimerPort
    routing: Routing
    policies: SlaPolicies
    calendar_for: Callable[[str], BusinessCalendar]
    severity_rules_for: Callable[[str], SeverityRules]
    collective_rules: CollectiveRules
    metrics: CasesMetrics
    dissatisfied_return_visit: str = "reopen"
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
