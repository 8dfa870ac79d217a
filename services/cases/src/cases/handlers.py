"""Cases' use cases: what happens when a contact arrives, when staff act on a case, when
an SLA clock runs out and when a return visit comes back.

Dependencies arrive as arguments (`CaseServices`); the rules themselves live in
`cases.domain` and know nothing of Kafka, HTTP or MongoDB.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from crm_contracts import topics
from crm_contracts.envelope import new_event
from crm_contracts.events.intake import ContactReceived
from crm_contracts.events.surveys import SurveyCompleted
from crm_runtime.leases import Timers
from crm_runtime.outbox import OutgoingEvent

from cases.adapters.store import (
    NO_DEADLINE,
    CaseRepository,
    ConcurrentUpdate,
    ContactLog,
    IncidentRepository,
)
from cases.domain import collective as coll
from cases.domain.calendar import BusinessCalendar
from cases.domain.procedure import SYSTEM, Case, open_case
from cases.domain.routing import Routing
from cases.domain.severity import SeverityContext, SeverityRules, propose_severity
from cases.domain.sla import SlaPolicies, apply_events, clocks_to_fire, next_due

log = logging.getLogger(__name__)

SOURCE = "/crm/cases"
CASE_KINDS = ("complaint", "repair")  # these open a case at once; the rest wait for staff
SLA_TIMER = "sla_due"
_NAMESPACE = uuid.UUID("0b7e4a52-3c1f-4f7e-9a51-8d2b6c9e1f30")


@dataclass
class CaseServices:
    cases: CaseRepository
    contacts: ContactLog
    incidents: IncidentRepository
    timers: Timers
    routing: Routing
    policies: SlaPolicies
    calendar_for: Callable[[str], BusinessCalendar]
    severity_rules_for: Callable[[str], SeverityRules]
    collective_rules: coll.CollectiveRules
    dissatisfied_return_visit: str = "reopen"
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


def case_id_for(contact_id: str) -> str:
    """A case opened from a contact has an id derived from it: opening twice is one case."""
    return str(uuid.uuid5(_NAMESPACE, f"case:{contact_id}"))


def outgoing(case: Case, events: list[tuple[str, dict[str, Any]]]) -> list[OutgoingEvent]:
    """Domain events as CloudEvents; the id is the case id and the event's sequence, so the
    same step always has the same id, whoever writes it."""
    return [
        OutgoingEvent(topics.CASES_CASES, new_event(
            event_type, source=SOURCE, subject=case.case_id, region=case.region, data=payload,
            id=f"{case.case_id}:{payload['sequence']}"))
        for event_type, payload in events
    ]


async def _commit_new(svc: CaseServices, case: Case) -> bool:
    events = case.pull_events()
    case.clocks = apply_events(case.clocks, events, svc.policies, svc.calendar_for(case.region))
    created = await svc.cases.insert(case, outgoing(case, events))
    if created:
        await _schedule_sla(svc, case)
    return created


async def _schedule_sla(svc: CaseServices, case: Case) -> None:
    due = next_due(case.clocks)
    timer_id = f"sla:{case.case_id}"
    if due is None or due >= NO_DEADLINE:
        await svc.timers.cancel(timer_id)
    else:
        await svc.timers.schedule(timer_id, SLA_TIMER, due, {"case_id": case.case_id})


async def act_on_case(svc: CaseServices, case_id: str, command: Callable[[Case], Any],
                      *, attempts: int = 20) -> Case:
    """Load a case, run a domain command on it, store state and events in one write.

    A concurrent change (another agent, a timer, an attached contact) makes the write fail
    its version check; the command is then run again on the fresh state.
    """
    for _ in range(attempts):
        found = await svc.cases.get_with_rev(case_id)
        if found is None:
            raise CaseNotFound(case_id)
        case, rev = found
        command(case)
        events = case.pull_events()
        if not events:
            return case
        case.clocks = apply_events(case.clocks, events, svc.policies, svc.calendar_for(case.region))
        try:
            await svc.cases.save(case, rev, outgoing(case, events))
        except ConcurrentUpdate:
            continue
        await _schedule_sla(svc, case)
        return case
    raise ConcurrentUpdate(case_id)


class CaseNotFound(LookupError):
    pass


# ------------------------------------------------------------------ contacts


async def on_contact_received(svc: CaseServices, data: ContactReceived, event_id: str) -> str | None:
    """A contact arrived from intake. Complaints and repairs open a case (or join the
    customer's open case about the same matter); consultations, suggestions and praise
    are recorded to be answered, and become a case only if staff decide so.
    Returns the case id the contact belongs to, if any."""
    known = await svc.contacts.get(data.contact_id)
    if known is not None and known.get("handled"):
        return known.get("case_id")  # delivered again: already done

    rules = svc.severity_rules_for(data.region)
    proposal = propose_severity(data.subject, data.body,
                                SeverityContext(kind_hint=str(data.kind_hint)), rules)
    mentions_media = bool(rules.mentions("media", data.subject, data.body))
    fact = coll.ContactFact(contact_id=data.contact_id, received_at=data.received_at, project=data.project,
                            category=proposal.category.value, building=data.building,
                            customer_id=data.customer_id, channel=str(data.channel),
                            mentions_media=mentions_media)
    contact_doc = {
        "_id": data.contact_id, "region": data.region, "customer_id": data.customer_id,
        "channel": str(data.channel), "kind_hint": str(data.kind_hint), "subject": data.subject,
        "project": data.project, "building": data.building, "unit": data.unit,
        "category": proposal.category.value, "received_at": data.received_at,
        "mentions_media": mentions_media, "query_key": coll.query_key(fact), "case_id": None,
        "duplicate_of": data.duplicate_of, "handled": False,
    }
    await svc.contacts.record(contact_doc)

    case_id = await _case_for_contact(svc, data, proposal)
    if case_id is not None:
        fact = dataclasses.replace(fact, case_id=case_id)
    query_key = coll.query_key(fact)
    if query_key is not None:
        await svc.contacts.add_fact(query_key, {**contact_doc, "case_id": case_id})
    await _detect_collective(svc, data.region, fact)
    # Last: a crash before this line handles the contact again, and every step above is
    # idempotent (the case id derives from the contact id).
    await svc.contacts.set(data.contact_id, case_id=case_id, handled=True)
    return case_id


async def _case_for_contact(svc: CaseServices, data: ContactReceived, proposal: Any) -> str | None:
    contact_id = data.contact_id
    now = svc.now()
    # A repeat of an earlier contact, or the same customer about an open matter: attach.
    target: str | None = None
    if data.duplicate_of:
        original = await svc.contacts.get(data.duplicate_of)
        target = original.get("case_id") if original else None
    if target is None and data.customer_id and str(data.kind_hint) in CASE_KINDS:
        for case in await svc.cases.open_cases_of(data.customer_id):
            same_place = not data.project or case.project in (None, data.project)
            if case.category == proposal.category and same_place:
                target = case.case_id
                break
    if target is not None:
        await act_on_case(svc, target, lambda c: c.attach_contact(contact_id, at=now))
        return target
    if str(data.kind_hint) not in CASE_KINDS:
        return None
    return await open_case_from_contact(svc, data.model_dump(mode="python"), proposal)


async def open_case_from_contact(svc: CaseServices, contact: dict[str, Any], proposal: Any = None,
                                 *, actor: str = SYSTEM) -> str:
    case_id = case_id_for(contact["contact_id"])
    if await svc.cases.exists(case_id):
        return case_id
    if proposal is None:
        proposal = propose_severity(contact.get("subject"), contact.get("body"),
                                    SeverityContext(kind_hint=contact.get("kind_hint")),
                                    svc.severity_rules_for(contact["region"]))
    now = svc.now()
    received = contact.get("received_at") or now
    number = await svc.cases.allocate_number(contact["region"], received.astimezone(UTC).year, case_id)
    case = open_case(case_id, number, {**contact, "channel": str(contact.get("channel"))}, proposal,
                     svc.routing, now)
    await _commit_new(svc, case)
    log.info("case opened", extra={"case_id": case_id, "case_number": number, "by": actor})
    return case_id


async def _detect_collective(svc: CaseServices, region: str, fact: coll.ContactFact) -> None:
    key = coll.query_key(fact)
    if key is None:
        return
    window = svc.collective_rules.window
    facts = await svc.contacts.facts(key, fact.received_at - window, fact.received_at + window)
    decision = coll.detect_collective(facts, fact, svc.collective_rules)
    if decision is None:
        return
    now = svc.now()
    events: list[OutgoingEvent] = []
    if decision.new_level:
        event_type, payload = decision.event(region, now)
        events.append(OutgoingEvent(topics.CASES_CASES, new_event(
            event_type, source=SOURCE, subject=decision.incident_id, region=region, data=payload,
            id=f"{decision.incident_id}:{decision.severity.value}")))
    await svc.incidents.upsert({
        "_id": decision.incident_id, "region": region, "project": decision.project,
        "building": decision.building, "category": decision.category, "severity": decision.severity.value,
        "customer_count": decision.customer_count, "contact_ids": list(decision.contact_ids),
        "case_ids": list(decision.case_ids), "channels": list(decision.channels),
        "window_start": decision.window_start, "window_end": decision.window_end, "updated_at": now,
    }, events)
    for case_id in decision.case_ids:
        await act_on_case(svc, case_id, lambda c: _link(c, decision, now))


def _link(case: Case, decision: coll.CollectiveDecision, now: datetime) -> None:
    if case.is_open:
        case.link_collective_incident(decision.incident_id, decision.severity, at=now, actor=SYSTEM)


# ------------------------------------------------------------------ timers and surveys


async def on_sla_timer(svc: CaseServices, timer: dict[str, Any]) -> None:
    """An SLA clock may have run out: record each breach once (the domain marks the clock
    breached), which escalates to the supervisor."""
    now = svc.now()

    def breach(case: Case) -> None:
        for clock in clocks_to_fire(case.clocks, now):
            case.record_sla_breach(clock.name, clock.due_at, at=now)

    case = await svc.cases.get(timer["payload"]["case_id"])
    if case is None or not case.is_open:
        return
    await act_on_case(svc, case.case_id, breach)


async def on_survey_completed(svc: CaseServices, data: SurveyCompleted) -> None:
    """A dissatisfied return visit (1 or 2) reopens the case, or opens a follow-up case."""
    if str(data.kind) != "case_return_visit" or not data.case_id or not data.dissatisfied:
        return
    now = svc.now()
    reason = f"return visit {data.survey_id} dissatisfied"
    if svc.dissatisfied_return_visit == "follow_up":
        original = await svc.cases.get(data.case_id)
        if original is None:
            return
        contact = {"contact_id": f"survey:{data.survey_id}", "region": original.region,
                   "customer_id": original.customer_id, "channel": original.channel,
                   "project": original.project, "building": original.building, "unit": original.unit,
                   "kind_hint": "complaint",
                   "subject": f"回访不满意 / Dissatisfied return visit: {original.case_number}",
                   "body": reason, "received_at": data.completed_at}
        await open_case_from_contact(svc, contact)
        return

    def reopen(case: Case) -> None:
        if case.status.value in ("resolved", "closed", "lesson_recorded"):
            case.reopen(reason, actor=SYSTEM, at=now)

    await act_on_case(svc, data.case_id, reopen)
