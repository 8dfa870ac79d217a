"""Use cases on contacts: one arrives from intake (it opens a case, joins one, or waits as
work for staff), and staff list, answer, or open a case from the ones that opened none."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from crm_contracts import topics
from crm_contracts.envelope import new_event
from crm_contracts.events.intake import ContactReceived
from crm_runtime.outbox import OutgoingEvent

from cases.adapters.worklist import work_fields, work_item, worklist_row
from cases.deps import CasesDeps
from cases.domain import collective as coll
from cases.domain.contacts import OpenCaseSummary, WorkStatus, case_to_join, opens_case, shown_kind
from cases.domain.errors import DomainError
from cases.domain.procedure import SYSTEM, Case
from cases.domain.severity import SeverityContext, SeverityProposal, propose_severity
from cases.handlers.cases import SOURCE, act_on_case, open_case_from_contact


class ContactNotFound(LookupError):
    pass


async def on_contact_received(deps: CasesDeps, data: ContactReceived, event_id: str) -> str | None:
    """A contact arrived from intake. It opens a case when it is a complaint or a repair,
    or when its content is major or crisis whatever the hint says; it joins the customer's
    open case about the same matter; otherwise it waits in the staff's work list.
    Returns the case id the contact belongs to, if any."""
    known = await deps.contacts.get(data.contact_id)
    if known is not None and known.get("handled"):
        return known.get("case_id")  # delivered again: already done

    proposal, fact, contact_doc = prepare_contact(deps, data)
    await deps.contacts.record(contact_doc)

    case_id = await _case_for_contact(deps, data, proposal)
    if case_id is None:  # work for staff: on their list before the contact counts as handled
        await deps.worklist.place(worklist_row({**contact_doc, "status": WorkStatus.UNANSWERED.value}), ())
    else:
        fact = dataclasses.replace(fact, case_id=case_id)
    query_key = coll.query_key(fact)
    if query_key is not None:
        await deps.contacts.add_fact(query_key, {**contact_doc, "case_id": case_id})
    await _detect_collective(deps, data.region, fact)
    # Last: a crash before this line handles the contact again, and every step above is
    # idempotent (the case id derives from the contact id).
    await deps.contacts.mark_handled(data.contact_id, case_id,
                                     None if case_id else WorkStatus.UNANSWERED.value)
    return case_id


def prepare_contact(deps: CasesDeps, data: ContactReceived,
                    ) -> tuple[SeverityProposal, coll.ContactFact, dict[str, Any]]:
    """The severity proposal, the collective fact and the contact's document (shared by
    the single and the batch path)."""
    rules = deps.severity_rules_for(data.region)
    proposal = propose_severity(data.subject, data.body, SeverityContext(kind_hint=str(data.kind_hint)), rules)
    mentions_media = bool(rules.mentions("media", data.subject, data.body))
    fact = coll.ContactFact(contact_id=data.contact_id, received_at=data.received_at, project=data.project,
                            category=proposal.category.value, building=data.building,
                            customer_id=data.customer_id, channel=str(data.channel),
                            mentions_media=mentions_media)
    # The body stays in this service (events carry ids): a case opened from the contact
    # later, by staff, keeps what the customer wrote.
    contact_doc = {
        "_id": data.contact_id, "region": data.region, "customer_id": data.customer_id,
        "channel": str(data.channel), "kind_hint": str(data.kind_hint), "kind_confidence": data.kind_confidence,
        "subject": data.subject, "body": data.body, "project": data.project, "building": data.building,
        "unit": data.unit, "category": proposal.category.value, "received_at": data.received_at,
        "mentions_media": mentions_media, "query_key": coll.query_key(fact), "case_id": None,
        "duplicate_of": data.duplicate_of, "handled": False, "status": None, "answer": None,
    }
    return proposal, fact, contact_doc


async def _case_for_contact(deps: CasesDeps, data: ContactReceived, proposal: SeverityProposal) -> str | None:
    contact_id, now = data.contact_id, deps.now()
    opens = opens_case(str(data.kind_hint), proposal)
    # A repeat of an earlier contact, or the same customer about an open matter: attach.
    target: str | None = None
    if data.duplicate_of:
        original = await deps.contacts.get(data.duplicate_of)
        target = original.get("case_id") if original else None
    if target is None and data.customer_id and opens:
        open_cases = [OpenCaseSummary(c.case_id, c.category, c.project, c.region)
                      for c in await deps.cases.open_cases_of(data.customer_id)]
        target = case_to_join(open_cases, category=proposal.category, project=data.project, region=data.region)
    if target is not None:
        await act_on_case(deps, target, lambda c: c.attach_contact(contact_id, at=now))
        return target
    if not opens:
        return None
    return await open_case_from_contact(deps, data.model_dump(mode="python"), proposal)


async def _detect_collective(deps: CasesDeps, region: str, fact: coll.ContactFact) -> None:
    key = coll.query_key(fact)
    if key is None:
        return
    window = deps.collective_rules.window
    facts = await deps.contacts.facts(key, fact.received_at - window, fact.received_at + window)
    decision = coll.detect_collective(facts, fact, deps.collective_rules)
    if decision is None:
        return
    now = deps.now()
    await deps.incidents.upsert(incident_document(decision, region, now), incident_events(decision, region, now))

    def link(case: Case) -> None:
        if case.is_open:
            case.link_collective_incident(decision.incident_id, decision.severity, at=now, actor=SYSTEM)

    for case_id in decision.case_ids:
        await act_on_case(deps, case_id, link)


def incident_events(decision: coll.CollectiveDecision, region: str, now: datetime) -> list[OutgoingEvent]:
    """The detected event, when the decision creates the incident or raises its severity;
    its id names the level, so each level is announced once."""
    if not decision.new_level:
        return []
    event_type, payload = decision.event(region, now)
    return [OutgoingEvent(topics.CASES_CASES, new_event(
        event_type, source=SOURCE, subject=decision.incident_id, region=region, data=payload,
        id=f"{decision.incident_id}:{decision.severity.value}"))]


def incident_document(decision: coll.CollectiveDecision, region: str, now: datetime) -> dict[str, Any]:
    return {
        "_id": decision.incident_id, "region": region, "project": decision.project,
        "building": decision.building, "category": decision.category, "severity": decision.severity.value,
        "customer_count": decision.customer_count, "contact_ids": list(decision.contact_ids),
        "case_ids": list(decision.case_ids), "channels": list(decision.channels),
        "window_start": decision.window_start, "window_end": decision.window_end, "updated_at": now,
    }


# ------------------------------------------------------------------ staff's work list


async def list_contacts(deps: CasesDeps, *, regions: list[str], status: str | None, kind: str | None,
                        after: tuple[Any, ...] | None, limit: int) -> list[dict[str, Any]]:
    """Contacts that opened no case, unanswered (oldest first) before answered."""
    statuses = [status] if status else [s.value for s in WorkStatus]
    return await deps.worklist.page(regions=regions, statuses=statuses, kind=kind, after=after, limit=limit)


async def _workable(deps: CasesDeps, contact_id: str) -> dict[str, Any]:
    doc = await deps.contacts.get(contact_id)
    if doc is None:
        raise ContactNotFound(contact_id)
    if not doc.get("handled"):
        raise DomainError(f"contact {contact_id} is still being received; try again shortly", field="status")
    return doc


async def answer_contact(deps: CasesDeps, contact_id: str, text: str, *, actor: str) -> dict[str, Any]:
    """Domain step 1 for a consultation, suggestion or praise: explain, record, close.
    The same answer again changes nothing (a retried request)."""
    doc = await _workable(deps, contact_id)
    previous = work_item(doc).status
    at = deps.now()
    written = await deps.contacts.change(contact_id, lambda d: _answered(d, text, actor, at))
    doc = await deps.contacts.get(contact_id) or doc
    if written is not None:
        deps.metrics.contact_answered(shown_kind(doc.get("kind_hint"), doc.get("kind_confidence")))
    await deps.worklist.place(worklist_row(doc), (previous.value,))  # also finishes an interrupted move
    return doc


def _answered(doc: dict[str, Any] | None, text: str, actor: str, at: datetime) -> dict[str, Any] | None:
    if doc is None:
        raise ContactNotFound(text)
    item = work_item(doc)
    new = item.answered(text, by=actor, at=at)
    return None if new == item else work_fields(new)


async def open_case_for_contact(deps: CasesDeps, contact_id: str, *, actor: str) -> str:
    """Staff decide a contact that opened no case is one: it keeps the contact's subject
    and body. Asking again returns the same case."""
    doc = await _workable(deps, contact_id)
    if doc.get("case_id") and doc.get("status") != WorkStatus.CASE_OPENED.value:
        raise DomainError(f"contact {contact_id} belongs to case {doc['case_id']}", field="status")
    received = doc.get("received_at")
    if isinstance(received, datetime) and received.tzinfo is None:
        received = received.replace(tzinfo=UTC)  # as pymongo returns it
    case_id = await open_case_from_contact(deps, {**doc, "contact_id": contact_id, "received_at": received},
                                           actor=actor)
    await deps.contacts.change(contact_id, lambda d: _case_opened(d, case_id))
    doc = await deps.contacts.get(contact_id) or doc
    # Out of whichever list it was in (also finishes a move a crash interrupted).
    await deps.worklist.place(worklist_row(doc), (WorkStatus.UNANSWERED.value, WorkStatus.ANSWERED.value))
    return case_id


def _case_opened(doc: dict[str, Any] | None, case_id: str) -> dict[str, Any] | None:
    if doc is None:
        raise ContactNotFound(case_id)
    item = work_item(doc)
    new = item.case_opened(case_id)
    return None if new == item else work_fields(new)
