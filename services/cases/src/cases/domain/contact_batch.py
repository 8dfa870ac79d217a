"""The contacts of one batch, decided in order as if they had come one at a time.

Why: a backlog (a storm of contacts after a flood, a channel catching up) arrives as
batches of hundreds. Writing them in bulk must not change what each contact becomes: a
further contact of a customer joins the case an earlier contact of the same batch
opened, a repeat of a contact follows its original even when both are in the batch, and
a collective incident is seen across the batch as it would be one contact after another.
These functions make those decisions over what the store held before the batch plus the
batch's own earlier contacts; the adapter reads and writes around them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from .collective import CollectiveDecision, CollectiveRules, ContactFact, detect_collective, query_key
from .contacts import OpenCaseSummary, case_to_join
from .severity import Category


@dataclass(frozen=True)
class Arrival:
    """What routing needs to know of one contact of the batch."""

    contact_id: str
    region: str
    category: Category
    opens: bool  # a complaint or repair, or content judged major or crisis
    customer_id: str | None = None
    project: str | None = None
    duplicate_of: str | None = None


@dataclass(frozen=True)
class Route:
    contact_id: str
    case_id: str | None  # None: work for staff
    opens_new: bool = False  # True: this contact opens `case_id`; else it joins it


def route_contacts(
    arrivals: Sequence[Arrival],
    *,
    stored_case_of: Mapping[str, str | None],
    open_cases_of: Mapping[str, Sequence[OpenCaseSummary]],
    new_case_id: Callable[[str], str],
) -> list[Route]:
    """The case each contact belongs to, in batch order. `stored_case_of` is the case of
    contacts handled before the batch (for repeats), `open_cases_of` each customer's open
    cases before it; a case opened earlier in the batch counts as open from then on."""
    decided: dict[str, str | None] = {}
    opened: dict[str, list[OpenCaseSummary]] = {}
    routes = []
    for a in arrivals:
        target = None
        if a.duplicate_of:
            target = decided[a.duplicate_of] if a.duplicate_of in decided else stored_case_of.get(a.duplicate_of)
        if target is None and a.customer_id and a.opens:
            candidates = [*open_cases_of.get(a.customer_id, ()), *opened.get(a.customer_id, ())]
            target = case_to_join(candidates, category=a.category, project=a.project, region=a.region)
        if target is not None:
            route = Route(a.contact_id, target)
        elif not a.opens:
            route = Route(a.contact_id, None)
        else:
            route = Route(a.contact_id, new_case_id(a.contact_id), opens_new=True)
            if a.customer_id:
                opened.setdefault(a.customer_id, []).append(
                    OpenCaseSummary(route.case_id or "", a.category, a.project, a.region))
        decided[a.contact_id] = route.case_id
        routes.append(route)
    return routes


def detect_in_batch(stored: Iterable[ContactFact], new: Sequence[ContactFact],
                    rules: CollectiveRules) -> list[tuple[ContactFact, CollectiveDecision]]:
    """`detect_collective` for each new fact in order, each seeing the stored facts and the
    batch's facts up to and including itself; each fact that made a decision, with it."""
    pool: dict[str, dict[str, ContactFact]] = {}
    for fact in stored:
        key = query_key(fact)
        if key is not None:
            pool.setdefault(key, {})[fact.contact_id] = fact
    decisions: list[tuple[ContactFact, CollectiveDecision]] = []
    for fact in new:
        key = query_key(fact)
        if key is None:
            continue
        known = pool.setdefault(key, {})
        known[fact.contact_id] = fact
        lo, hi = fact.received_at - rules.window, fact.received_at + rules.window
        decision = detect_collective([f for f in known.values() if lo <= f.received_at <= hi], fact, rules)
        if decision is not None:
            decisions.append((fact, decision))
    return decisions
