"""Collective incidents (集体投诉): many owners complaining about the same thing at once.

Why: collective complaints are the centre's main crisis early warning (docs/domain.md
section 2): they must be spotted and escalated fast, whichever channels the owners use —
five calls to the hotline, a forum thread and a letter are one incident, not seven cases
in seven queues.

Rule: at least `min_customers` (default 5) *distinct* customers about the same project
(and the same building, when the contacts say which) and the same category, within a
window of `window` (default 24 h), any mix of channels, make an incident:
- severity major; crisis from `crisis_customers` (default 20) customers, or as soon as any
  of the contacts mentions the media;
- a contact with neither customer id nor `reporter_key` (e.g. hashed phone, forum author)
  is grouped but not counted: we cannot prove it is another customer;
- a contact stating building B matches contacts about B and contacts stating no building;
  the incident's building is the one building its members name, else the whole project;
- the window is the earliest `window`-long span containing the new contact that reaches
  the threshold (contacts arriving out of order are handled); its start, with the key,
  gives a deterministic incident id, so two replicas seeing the same contacts produce the
  same incident.

Adapter contract: store every contact fact with `query_key(fact)` and its received_at;
for a new fact, load the facts with the same query key received within `window` either
side, call `detect_collective`, upsert the incident by `incident_id`, link its cases
(`Case.link_collective_incident`) and emit `crm.cases.collective-incident.detected.v1`
when `new_level` is true (first detection, or raised to crisis).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from crm_contracts.events import cases as contract

from .events import COLLECTIVE_INCIDENT_DETECTED
from .severity import Severity


@dataclass(frozen=True)
class ContactFact:
    """What collective detection needs to know about one contact."""

    contact_id: str
    received_at: datetime
    project: str | None
    category: str | None
    building: str | None = None
    customer_id: str | None = None
    reporter_key: str | None = None  # distinct-person key when the customer is unknown
    channel: str | None = None
    mentions_media: bool = False
    case_id: str | None = None

    @property
    def who(self) -> str | None:
        if self.customer_id:
            return f"customer:{self.customer_id}"
        if self.reporter_key:
            return f"reporter:{self.reporter_key}"
        return None


@dataclass(frozen=True)
class CollectiveRules:
    min_customers: int = 5
    crisis_customers: int = 20
    window: timedelta = timedelta(hours=24)

    def __post_init__(self) -> None:
        if not 1 < self.min_customers <= self.crisis_customers:
            raise ValueError("need 1 < min_customers <= crisis_customers")
        if self.window <= timedelta(0):
            raise ValueError("window must be positive")


@dataclass(frozen=True)
class CollectiveDecision:
    incident_id: str
    key: str
    query_key: str
    project: str
    building: str | None
    category: str
    window_start: datetime
    window_end: datetime
    severity: Severity
    customer_count: int
    contact_ids: tuple[str, ...]
    case_ids: tuple[str, ...]
    channels: tuple[str, ...]
    mentions_media: bool
    new_level: bool  # this contact created the incident or raised its severity
    reasons: tuple[str, ...]

    def event(
        self, region: str, at: datetime, actor: str = "system"
    ) -> tuple[str, contract.CollectiveIncidentDetected]:
        """The `crm.cases.collective-incident.detected.v1` event, as its contract model."""
        return COLLECTIVE_INCIDENT_DETECTED, contract.CollectiveIncidentDetected(
            incident_id=self.incident_id,
            region=region,
            project=self.project,
            building=self.building,
            category=contract.CaseCategory(self.category),
            severity=contract.Severity(self.severity.value),
            customer_count=self.customer_count,
            contact_ids=list(self.contact_ids),
            case_ids=list(self.case_ids),
            channels=[contract.ContactChannel(c) for c in self.channels],
            mentions_media=self.mentions_media,
            reasons=list(self.reasons),
            window_start=self.window_start,
            window_end=self.window_end,
            occurred_at=at,
            actor=actor,
        )


def collective_key(project: str, building: str | None, category: str) -> str:
    """Equality key of a matter: project, building ("*" when unknown) and category."""
    return "|".join((project, building or "*", category))


def query_key(fact: ContactFact) -> str | None:
    """The project-level key the adapter stores with each fact and queries by."""
    if not fact.project or not fact.category:
        return None
    return collective_key(fact.project, None, fact.category)


def incident_id(key: str, window_start: datetime) -> str:
    start = window_start.astimezone(UTC).isoformat()
    return "CI-" + hashlib.sha256(f"{key}|{start}".encode()).hexdigest()[:20]


def _same_matter(fact: ContactFact, new: ContactFact) -> bool:
    return (
        fact.project == new.project
        and fact.category == new.category
        and (new.building is None or fact.building is None or fact.building == new.building)
    )


def _severity(customers: int, media: bool, rules: CollectiveRules) -> Severity | None:
    if customers < rules.min_customers:
        return None
    if media or customers >= rules.crisis_customers:
        return Severity.CRISIS
    return Severity.MAJOR


def detect_collective(
    window_contacts: Iterable[ContactFact],
    new: ContactFact,
    rules: CollectiveRules | None = None,
) -> CollectiveDecision | None:
    """The collective incident `new` belongs to, or None below the threshold."""
    rules = rules or CollectiveRules()
    if not new.project or not new.category:
        return None
    lo, hi = new.received_at - rules.window, new.received_at + rules.window
    by_id = {c.contact_id: c for c in window_contacts if _same_matter(c, new)}
    by_id[new.contact_id] = new
    facts = sorted(
        (c for c in by_id.values() if lo <= c.received_at <= hi),
        key=lambda c: (c.received_at, c.contact_id),
    )
    starts = sorted({c.received_at for c in facts if c.received_at <= new.received_at})
    for start in starts:
        end = start + rules.window
        members = [c for c in facts if start <= c.received_at <= end]
        customers = {c.who for c in members if c.who}
        media = any(c.mentions_media for c in members)
        severity = _severity(len(customers), media, rules)
        if severity is None:
            continue
        others = [c for c in members if c.contact_id != new.contact_id]
        before = _severity(
            len({c.who for c in others if c.who}), any(c.mentions_media for c in others), rules
        )
        new_level = before is None or before.rank < severity.rank
        buildings = {c.building for c in members if c.building}
        building = next(iter(buildings)) if len(buildings) == 1 else None
        key = collective_key(new.project, building, new.category)
        reasons = [f"customers:{len(customers)}>={rules.min_customers}"]
        if len(customers) >= rules.crisis_customers:
            reasons.append(f"customers:{len(customers)}>={rules.crisis_customers}")
        if media:
            reasons.append("media")
        return CollectiveDecision(
            incident_id=incident_id(key, start),
            key=key,
            query_key=collective_key(new.project, None, new.category),
            project=new.project,
            building=building,
            category=new.category,
            window_start=start,
            window_end=end,
            severity=severity,
            customer_count=len(customers),
            contact_ids=tuple(c.contact_id for c in members),
            case_ids=tuple(dict.fromkeys(c.case_id for c in members if c.case_id)),
            channels=tuple(sorted({c.channel for c in members if c.channel})),
            mentions_media=media,
            new_level=new_level,
            reasons=tuple(reasons),
        )
    return None
