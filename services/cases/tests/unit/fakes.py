"""In-memory fakes of the ports in `cases.deps`, for fast unit tests of the handlers.

They keep what the MongoDB adapters promise and nothing more: a case is stored as its
document (so a handler cannot lean on a shared object), a save at a stale revision is
refused, an insert of an existing id is refused, every write of an event is kept as the
outbox would keep it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cases.adapters.documents import case_from_doc, case_to_doc
from cases.adapters.metrics import CasesMetrics
from cases.adapters.store import ConcurrentUpdate
from cases.adapters.worklist import sort_key
from cases.deps import CasesDeps
from cases.domain.calendar import BusinessCalendar
from cases.domain.collective import CollectiveRules, ContactFact
from cases.domain.procedure import Case
from cases.domain.routing import Routing
from cases.domain.severity import SeverityRules
from cases.domain.sla import SlaPolicies
from crm_contracts.regions import case_number
from crm_runtime.outbox import OutgoingEvent
from prometheus_client import CollectorRegistry


class FakeCases:
    def __init__(self) -> None:
        self.docs: dict[str, tuple[dict[str, Any], int]] = {}
        self.numbers: dict[str, str] = {}
        self.counters: dict[str, int] = {}
        self.published: list[OutgoingEvent] = []
        self.conflicts_to_raise = 0  # the next saves lose to "another writer"
        self.saves = 0

    async def get(self, case_id_or_number: str) -> Case | None:
        found = await self.get_with_rev(case_id_or_number)
        return found[0] if found else None

    async def get_with_rev(self, case_id_or_number: str) -> tuple[Case, int] | None:
        case_id = self.numbers.get(case_id_or_number, case_id_or_number)
        if case_id not in self.docs:
            return None
        doc, rev = self.docs[case_id]
        return case_from_doc(copy.deepcopy(doc)), rev

    async def exists(self, case_id: str) -> bool:
        return case_id in self.docs

    async def insert(self, case: Case, events: list[OutgoingEvent]) -> bool:
        if case.case_id in self.docs:
            return False
        self.docs[case.case_id] = (case_to_doc(case), 0)
        self.published += events
        return True

    async def save(self, case: Case, rev: int, events: list[OutgoingEvent]) -> None:
        self.saves += 1
        if self.conflicts_to_raise:
            self.conflicts_to_raise -= 1
            raise ConcurrentUpdate(case.case_id)
        if self.docs[case.case_id][1] != rev:
            raise ConcurrentUpdate(case.case_id)
        self.docs[case.case_id] = (case_to_doc(case), rev + 1)
        self.published += events

    async def open_cases_of(self, customer_id: str) -> list[Case]:
        cases = [case_from_doc(copy.deepcopy(d)) for d, _ in self.docs.values()]
        return [c for c in cases if c.customer_id == customer_id and c.is_open]

    async def allocate_number(self, region: str, year: int, case_id: str) -> str:
        for number, owner in self.numbers.items():
            if owner == case_id:
                return number
        key = f"{region}:{year}"
        self.counters[key] = self.counters.get(key, 0) + 1
        number = case_number(region, year, self.counters[key])
        self.numbers[number] = case_id
        return number

    async def queue(self, filters: dict[str, Any], *, regions: list[str], due_before: datetime | None,
                    after: tuple[datetime, str] | None, limit: int) -> list[dict[str, Any]]:
        return []

    def types(self, case_id: str | None = None) -> list[str]:
        return [o.event.type for o in self.published if case_id is None or o.event.subject == case_id]


class FakeContacts:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.facts_by_key: dict[str, dict[str, dict[str, Any]]] = {}

    async def get(self, contact_id: str) -> dict[str, Any] | None:
        doc = self.docs.get(contact_id)
        return copy.deepcopy(doc) if doc is not None else None

    async def record(self, contact: dict[str, Any]) -> None:
        self.docs.setdefault(contact["_id"], copy.deepcopy(contact))

    async def change(self, contact_id: str,
                     change: Callable[[dict[str, Any] | None], dict[str, Any] | None]) -> dict[str, Any] | None:
        fields = change(await self.get(contact_id))
        if fields is not None:
            self.docs.setdefault(contact_id, {"_id": contact_id}).update(copy.deepcopy(fields))
        return fields

    async def mark_handled(self, contact_id: str, case_id: str | None, status: str | None) -> None:
        self.docs[contact_id].update(case_id=case_id, handled=True, status=status)

    async def add_fact(self, query_key: str, contact: dict[str, Any]) -> None:
        self.facts_by_key.setdefault(query_key, {})[contact["_id"]] = copy.deepcopy(contact)

    async def facts(self, query_key: str, since: datetime, until: datetime) -> list[ContactFact]:
        return [ContactFact(contact_id=d["_id"], received_at=d["received_at"], project=d.get("project"),
                            category=d.get("category"), building=d.get("building"),
                            customer_id=d.get("customer_id"), channel=d.get("channel"),
                            mentions_media=bool(d.get("mentions_media")), case_id=d.get("case_id"))
                for d in self.facts_by_key.get(query_key, {}).values() if since <= d["received_at"] <= until]


class FakeWorklist:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    async def place(self, row: dict[str, Any], previous: Iterable[str] = ()) -> None:
        self.rows[row["contact_id"]] = copy.deepcopy(row)

    async def page(self, *, regions: list[str], statuses: list[str], kind: str | None,
                   after: tuple[Any, ...] | None, limit: int) -> list[dict[str, Any]]:
        rows = [r for r in self.rows.values() if r["region"] in regions and r["status"] in statuses
                and (kind is None or r["kind"] == kind) and (after is None or sort_key(r) > after)]
        return sorted(rows, key=sort_key)[:limit]


class FakeIncidents:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.published: list[OutgoingEvent] = []

    async def upsert(self, incident: dict[str, Any], events: list[OutgoingEvent]) -> None:
        incident = dict(incident)
        self.docs[incident.pop("_id")] = incident
        self.published += events


class FakeTimers:
    def __init__(self) -> None:
        self.pending: dict[str, tuple[str, datetime, dict[str, Any]]] = {}

    async def schedule(self, timer_id: str, kind: str, due_at: datetime, payload: dict[str, Any]) -> None:
        self.pending[timer_id] = (kind, due_at, payload)

    async def cancel(self, timer_id: str) -> None:
        self.pending.pop(timer_id, None)


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 3, 2, 1, 30, tzinfo=UTC))  # 09:30 Beijing

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def fake_deps(clock: Clock | None = None, **overrides: Any) -> CasesDeps:
    values: dict[str, Any] = dict(
        cases=FakeCases(), contacts=FakeContacts(), worklist=FakeWorklist(), incidents=FakeIncidents(),
        timers=FakeTimers(), routing=Routing(), policies=SlaPolicies(),
        calendar_for=lambda region: BusinessCalendar(),
        severity_rules_for=lambda region: SeverityRules.default(),
        collective_rules=CollectiveRules(), metrics=CasesMetrics(CollectorRegistry()),
        now=clock or Clock())
    values.update(overrides)
    return CasesDeps(**values)
