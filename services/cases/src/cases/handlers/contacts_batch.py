"""A batch of contacts from intake (a backlog, a storm): what `on_contact_received` does
for one contact, for hundreds at once, with a few store commands per batch.

The decisions are the single path's, taken in batch order (cases.domain.contact_batch):
a contact joins the case an earlier contact of its customer opened in the same batch, a
repeat follows its original, collective incidents are detected across the batch. Then
everything is written in bulk, in an order that makes a crash anywhere harmless: the
contacts first, then case numbers (kept by the case: `case:<id>` once given), cases with
their events, queue rows, customer index, SLA timers, changes to cases stored before the
batch (each through its revision check, as a staff action), collective facts and
incidents, the work list, and last the contacts marked handled. A redelivered batch skips
what is handled and finds the rest where the crash left it: case ids derive from contact
ids, numbers stay with their case, every write is idempotent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from datetime import UTC
from typing import Any

from crm_contracts.events.intake import ContactReceived
from crm_runtime.batching import gather_bounded
from crm_runtime.outbox import OutgoingEvent

from cases.adapters.batch_store import ContactBatchStore, days_between, fact_bucket
from cases.adapters.worklist import worklist_row
from cases.deps import CasesDeps
from cases.domain import collective as coll
from cases.domain.contact_batch import Arrival, Route, detect_in_batch, route_contacts
from cases.domain.contacts import OpenCaseSummary, WorkStatus, opens_case
from cases.domain.procedure import SYSTEM, Case, open_case, settle
from cases.domain.severity import Category, SeverityProposal
from cases.domain.sla import next_due
from cases.handlers.cases import SLA_TIMER, _count, act_on_case, case_id_for, outgoing
from cases.handlers.contacts import incident_document, incident_events, prepare_contact

log = logging.getLogger(__name__)

STORED_CASE_CONCURRENCY = 8  # cases stored before the batch, changed one by one (revision checks)


@dataclasses.dataclass
class _Contact:
    data: ContactReceived
    proposal: SeverityProposal
    fact: coll.ContactFact
    doc: dict[str, Any]


async def on_contacts_received(deps: CasesDeps, store: ContactBatchStore,
                               items: Sequence[ContactReceived]) -> dict[str, str | None]:
    """Handle a batch of `contact.received`; returns each contact's case id (or None)."""
    first: dict[str, ContactReceived] = {}
    for data in items:
        first.setdefault(data.contact_id, data)  # the same event twice in a batch: once
    now = deps.now()
    prepared = {cid: _Contact(d, *prepare_contact(deps, d)) for cid, d in first.items()}
    # Arrivals recorded first, contacts read only if seen before: on a first delivery
    # nothing is read. The contacts themselves are stored last, handled.
    seen = await store.record_arrivals([(cid, c.doc["received_at"]) for cid, c in prepared.items()])
    known = await store.contacts([*seen, *(d.duplicate_of for d in first.values() if d.duplicate_of)])
    result: dict[str, str | None] = {}
    contacts = []
    for contact_id, c in prepared.items():
        if known.get(contact_id, {}).get("handled"):
            result[contact_id] = known[contact_id].get("case_id")  # delivered again: done
        else:
            contacts.append(c)
    if not contacts:
        return result

    # The customers' index first (an insert: most customers of a backlog have none), then
    # two reads side by side (reads only: no bulk command runs beside another).
    arrivals, listed = await _list_customers(store, contacts, known)
    routes, buckets = await asyncio.gather(
        _route(store, arrivals, known, listed),
        store.fact_buckets(_buckets_to_read(deps, [c.fact for c in contacts]),
                           filing=[b for c in contacts if (b := _filed_under(c.fact))]))
    case_of = {r.contact_id: r.case_id for r in routes}
    # Only a contact an earlier delivery saw can have its case opened or numbered already.
    redone = [r.case_id for r in routes if r.opens_new and r.case_id and r.contact_id in seen]
    earlier = await store.cases(redone)
    numbers = await store.numbers_for([
        (r.case_id, c.data.region, deps.calendar_for(c.data.region).year_of(c.data.received_at or now))
        for r, c in zip(routes, contacts, strict=True) if r.opens_new and r.case_id and r.case_id not in earlier],
        may_have=redone)
    opened: dict[str, Case] = {}
    after_opening: dict[str, list[Callable[[Case], Any]]] = {}  # what an opened case saw, should it exist
    stored_changes: dict[str, list[Callable[[Case], Any]]] = {}
    for route, c in zip(routes, contacts, strict=True):
        if route.case_id is None:
            continue
        if route.case_id in numbers and route.opens_new:
            opened[route.case_id] = open_case(route.case_id, numbers[route.case_id],
                                              {**c.data.model_dump(mode="python"), "channel": str(c.data.channel)},
                                              c.proposal, deps.routing, now)
            after_opening[route.case_id] = []
        elif route.case_id in opened:
            _apply(opened[route.case_id], after_opening, _attacher(c.data.contact_id, now))
        elif not route.opens_new:
            stored_changes.setdefault(route.case_id, []).append(_attacher(c.data.contact_id, now))

    facts = [dataclasses.replace(c.fact, case_id=case_of[c.data.contact_id]) for c in contacts]
    decisions = detect_in_batch(store.facts_of(buckets.values()), facts, deps.collective_rules)
    region_of = {c.data.contact_id: c.data.region for c in contacts}
    incidents, links = _incidents(decisions, region_of, now)
    for case_id, link in links:
        if case_id in opened:
            _apply(opened[case_id], after_opening, link)
        else:
            stored_changes.setdefault(case_id, []).append(link)

    written = [(case, settle(case, deps.policies, deps.calendar_for(case.region))) for case in opened.values()]
    inserted = await store.insert_cases([(case, outgoing(case, events)) for case, events in written],
                                        listed=listed)
    for case, events in written:
        if case.case_id in inserted:
            _count(deps, events)
            log.info("case opened", extra={"case_id": case.case_id, "case_number": case.case_number, "by": SYSTEM})
    for case_id in opened.keys() - inserted:  # opened meanwhile by another replica: change it as stored
        stored_changes[case_id] = [*after_opening[case_id], *stored_changes.get(case_id, ())]
        earlier.update(await store.cases([case_id]))
    await store.list_under_customers(list(earlier.values()))  # an earlier delivery may have died before it
    await store.schedule_sla(_timers([*(c for c, _ in written if c.case_id in inserted), *earlier.values()]))
    await _change_stored(deps, stored_changes)

    stale = await store.add_facts([(key, {**c.doc, "case_id": case_of[c.data.contact_id]}) for c in contacts
                                   if (key := c.doc["query_key"]) is not None], buckets)
    if stale:  # another replica filed facts there since they were read: detect again with them
        await _change_stored(deps, await _detect_again(deps, store, facts, stale, decisions, incidents, region_of))
    await gather_bounded((deps.incidents.upsert(doc, events) for doc, events in incidents.values()),
                         concurrency=STORED_CASE_CONCURRENCY)
    await store.place_work([worklist_row({**c.doc, "status": WorkStatus.UNANSWERED.value})
                            for c in contacts if case_of[c.data.contact_id] is None])
    await store.store_handled([{**c.doc, "case_id": case_of[c.data.contact_id], "handled": True,
                                "status": None if case_of[c.data.contact_id] else WorkStatus.UNANSWERED.value}
                               for c in contacts])
    result.update(case_of)
    return result


def _arrivals(contacts: list[_Contact]) -> list[Arrival]:
    return [Arrival(contact_id=c.data.contact_id, region=c.data.region, category=c.proposal.category,
                    opens=opens_case(str(c.data.kind_hint), c.proposal), customer_id=c.data.customer_id,
                    project=c.data.project, duplicate_of=c.data.duplicate_of) for c in contacts]


def _routes(arrivals: list[Arrival], known: dict[str, dict[str, Any]],
            open_cases_of: dict[str, list[OpenCaseSummary]]) -> list[Route]:
    return route_contacts(arrivals, stored_case_of={cid: doc.get("case_id") for cid, doc in known.items()},
                          open_cases_of=open_cases_of, new_case_id=case_id_for)


async def _list_customers(store: ContactBatchStore, contacts: list[_Contact], known: dict[str, dict[str, Any]],
                          ) -> tuple[list[Arrival], dict[str, list[str]]]:
    """The write carries the check: each customer's index is inserted with the cases the
    batch opens for them if they have no open case. An insert that succeeds proves the
    customer had no index, so no open case, and those routes stand; the customers whose
    index exists are read (`_route`). Returns the index rows inserted (customer: case ids).
    A case listed before it is stored (a crash between) is skipped by every reader."""
    arrivals = _arrivals(contacts)
    customers = {a.customer_id for a in arrivals if a.customer_id and a.opens}
    opening: dict[str, list[str]] = {customer: [] for customer in customers}
    for route, a in zip(_routes(arrivals, known, {}), arrivals, strict=True):
        if route.opens_new and route.case_id and a.customer_id in opening:
            opening[a.customer_id].append(route.case_id)
    existed = await store.list_new_customers(opening)
    return arrivals, {customer: ids for customer, ids in opening.items() if customer not in existed}


async def _route(store: ContactBatchStore, arrivals: list[Arrival], known: dict[str, dict[str, Any]],
                 listed: dict[str, list[str]]) -> list[Route]:
    # Only customers whose index existed can have open cases; for the others the routes
    # are those the index was inserted with (they depend on no other customer's cases).
    customers = {a.customer_id for a in arrivals if a.customer_id and a.opens and a.customer_id not in listed}
    stored_open = await store.open_cases_of(customers)
    open_cases_of = {customer: [OpenCaseSummary(d["_id"], Category(d.get("category") or "other"), d.get("project"),
                                                d.get("region")) for d in docs]
                     for customer, docs in stored_open.items()}
    return _routes(arrivals, known, open_cases_of)


def _buckets_to_read(deps: CasesDeps, facts: list[coll.ContactFact]) -> list[str]:
    window = deps.collective_rules.window
    wanted: dict[str, None] = {}
    for fact in facts:
        key = coll.query_key(fact)
        if key is not None:
            for day in days_between(fact.received_at - window, fact.received_at + window):
                wanted[fact_bucket(key, day)] = None
    return list(wanted)


def _filed_under(fact: coll.ContactFact) -> str | None:
    key = coll.query_key(fact)
    return fact_bucket(key, fact.received_at.astimezone(UTC).date()) if key is not None else None


def _decided(decision: coll.CollectiveDecision) -> tuple[str, str, tuple[str, ...]]:
    return decision.incident_id, decision.severity.value, decision.case_ids


def _incidents(decisions: Sequence[tuple[coll.ContactFact, coll.CollectiveDecision]], region_of: dict[str, str],
               now: Any) -> tuple[dict[str, tuple[dict[str, Any], list[OutgoingEvent]]],
                                  list[tuple[str, Callable[[Case], Any]]]]:
    """Each incident's document and events (the batch's last decision on it, all their
    announcements), and the link of each case decided into one."""
    incidents: dict[str, tuple[dict[str, Any], list[OutgoingEvent]]] = {}
    links = []
    for fact, decision in decisions:
        region = region_of[fact.contact_id]
        announced = [*incidents.get(decision.incident_id, ({}, []))[1], *incident_events(decision, region, now)]
        incidents[decision.incident_id] = (incident_document(decision, region, now), announced)
        link = _linker(decision.incident_id, decision.severity.value, now)
        links += [(case_id, link) for case_id in decision.case_ids]
    return incidents, links


async def _detect_again(deps: CasesDeps, store: ContactBatchStore, facts: list[coll.ContactFact], stale: set[str],
                        decisions: Sequence[tuple[coll.ContactFact, coll.CollectiveDecision]],
                        incidents: dict[str, tuple[dict[str, Any], list[OutgoingEvent]]], region_of: dict[str, str],
                        ) -> dict[str, list[Callable[[Case], Any]]]:
    """Detection of the facts filed under `stale` buckets, on those buckets as they are now
    (read, with the other writer's facts), for what it decides that the batch did not:
    added to `incidents` (the later decision, with every announcement), and the links of
    cases returned as changes to stored cases (the batch's cases are stored by now)."""
    # Every fact whose window reads a stale bucket, not only those filed under one: a fact of
    # the next day was judged on the stale bucket too.
    again = [f for f in facts if stale.intersection(_buckets_to_read(deps, [f]))]
    buckets = await store.fact_buckets(_buckets_to_read(deps, again))
    ids = {f.contact_id for f in again}
    stored = [f for f in store.facts_of(buckets.values()) if f.contact_id not in ids]
    decided = {_decided(d) for _, d in decisions}
    fresh = [(f, d) for f, d in detect_in_batch(stored, again, deps.collective_rules) if _decided(d) not in decided]
    more, links = _incidents(fresh, region_of, deps.now())
    for incident_id, (doc, events) in more.items():
        new_ids = {e.event.id for e in events}
        earlier, announced = incidents.get(incident_id, ({}, []))
        before = [e for e in announced if e.event.id not in new_ids]
        incidents[incident_id] = (_wider(earlier, doc), [*before, *events])
    relinked: dict[str, list[Callable[[Case], Any]]] = {}
    for case_id, link in links:
        relinked.setdefault(case_id, []).append(link)
    return relinked


def _wider(earlier: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """The incident as the larger of two decisions on it, with the contacts and cases of
    both: a re-check from a narrower window must not shrink what the batch decided."""
    if not earlier:
        return later
    doc = dict(later if len(later["contact_ids"]) >= len(earlier["contact_ids"]) else earlier)
    for field in ("contact_ids", "case_ids", "channels"):
        doc[field] = list(dict.fromkeys([*earlier[field], *later[field]]))
    doc["customer_count"] = max(earlier["customer_count"], later["customer_count"])
    return doc


def _apply(case: Case, log_of: dict[str, list[Callable[[Case], Any]]], command: Callable[[Case], Any]) -> None:
    command(case)
    log_of[case.case_id].append(command)


def _attacher(contact_id: str, now: Any) -> Callable[[Case], None]:
    def attach(case: Case) -> None:
        case.attach_contact(contact_id, at=now)
    return attach


def _linker(incident_id: str, severity: str, now: Any) -> Callable[[Case], None]:
    def link(case: Case) -> None:
        if case.is_open:
            case.link_collective_incident(incident_id, severity, at=now, actor=SYSTEM)
    return link


def _timers(cases: Sequence[Case]) -> list[tuple[str, str, Any, dict[str, Any]]]:
    """The SLA timer of each case, as `schedule_sla` sets it (a case with no clock due has
    none to schedule: a new case always has one)."""
    out = []
    for case in cases:
        due = next_due(case.clocks)
        if due is not None:
            out.append((f"sla:{case.case_id}", SLA_TIMER, due, {"case_id": case.case_id}))
    return out


async def _change_stored(deps: CasesDeps, changes: dict[str, list[Callable[[Case], Any]]]) -> None:
    """Attach contacts to and link cases stored before the batch: per case one
    read-modify-write with its revision check, as a staff action (cases side by side)."""
    def run_all(commands: list[Callable[[Case], Any]]) -> Callable[[Case], None]:
        def command(case: Case) -> None:
            for c in commands:
                c(case)
        return command

    await gather_bounded((act_on_case(deps, case_id, run_all(commands)) for case_id, commands in changes.items()),
                         concurrency=STORED_CASE_CONCURRENCY)
