"""Use cases on a case: run a command on it, open one, an SLA clock running out, a return
visit coming back. Dependencies arrive as `CasesDeps`; the rules live in `cases.domain`."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from crm_contracts import topics
from crm_contracts.envelope import new_event
from crm_contracts.events.surveys import SurveyCompleted
from crm_runtime.outbox import OutgoingEvent
from crm_runtime.revisions import RevisionConflict
from crm_runtime.rmw import read_modify_write

from cases.adapters.store import NO_DEADLINE, ConcurrentUpdate
from cases.deps import CasesDeps
from cases.domain import events as ev
from cases.domain.procedure import SYSTEM, Case, Event, open_case, settle
from cases.domain.severity import SeverityContext, SeverityProposal, propose_severity
from cases.domain.sla import clocks_to_fire, next_due

log = logging.getLogger(__name__)

SOURCE = "/crm/cases"
SLA_TIMER = "sla_due"
_NAMESPACE = uuid.UUID("0b7e4a52-3c1f-4f7e-9a51-8d2b6c9e1f30")


class CaseNotFound(LookupError):
    pass


def case_id_for(contact_id: str) -> str:
    """A case opened from a contact has an id derived from it: opening twice is one case."""
    return str(uuid.uuid5(_NAMESPACE, f"case:{contact_id}"))


def outgoing(case: Case, events: list[Event]) -> list[OutgoingEvent]:
    """Domain events as CloudEvents carrying their contract models; the id is the case id
    and the event's sequence, so the same step always has the same id, whoever writes it."""
    return [
        OutgoingEvent(topics.CASES_CASES, new_event(
            event_type, source=SOURCE, subject=case.case_id, region=case.region, data=event,
            id=f"{case.case_id}:{event.sequence}"))
        for event_type, event in events
    ]


def _count(deps: CasesDeps, events: list[Event]) -> None:
    for event_type, event in events:
        if event_type == ev.CASE_OPENED and event.severity is not None:
            deps.metrics.case_opened(event.severity.value)
        elif event_type == ev.CASE_SLA_BREACHED:
            deps.metrics.sla_breached(str(getattr(event, "clock", "")))


async def schedule_sla(deps: CasesDeps, case: Case) -> None:
    due = next_due(case.clocks)
    timer_id = f"sla:{case.case_id}"
    if due is None or due >= NO_DEADLINE:
        await deps.timers.cancel(timer_id)
    else:
        await deps.timers.schedule(timer_id, SLA_TIMER, due, {"case_id": case.case_id})


async def act_on_case(deps: CasesDeps, case_id: str, command: Callable[[Case], Any],
                      *, attempts: int = 20) -> Case:
    """Load a case, run a domain command on it, store state and events in one write.

    A concurrent change (another agent, a timer, an attached contact) makes the write fail
    its revision check; the command then runs again on the fresh state.
    """
    written: list[Event] = []

    async def save(case: Case | None, rev: int | None) -> None:
        assert case is not None  # change() returns None rather than write nothing
        await deps.cases.save(case, rev or 0, outgoing(case, written))

    def change(case: Case | None) -> Case | None:
        if case is None:
            raise CaseNotFound(case_id)
        command(case)
        written[:] = settle(case, deps.policies, deps.calendar_for(case.region))
        return case if written else None

    try:
        loaded, saved = await read_modify_write(lambda: deps.cases.get_with_rev(case_id), save, change,
                                                attempts=attempts, what=case_id)
    except RevisionConflict as exc:
        raise ConcurrentUpdate(case_id) from exc
    if saved is None:
        assert loaded is not None
        return loaded
    _count(deps, written)
    await schedule_sla(deps, saved)
    return saved


async def open_case_from_contact(deps: CasesDeps, contact: dict[str, Any],
                                 proposal: SeverityProposal | None = None, *, actor: str = SYSTEM) -> str:
    """Open the case of a contact (its id derives from the contact's): once, however often."""
    case_id = case_id_for(contact["contact_id"])
    if await deps.cases.exists(case_id):
        return case_id
    if proposal is None:
        proposal = propose_severity(contact.get("subject"), contact.get("body"),
                                    SeverityContext(kind_hint=contact.get("kind_hint")),
                                    deps.severity_rules_for(contact["region"]))
    now = deps.now()
    received = contact.get("received_at") or now
    number = await deps.cases.allocate_number(contact["region"], deps.calendar_for(contact["region"]).year_of(received),
                                              case_id)
    case = open_case(case_id, number, {**contact, "channel": str(contact.get("channel"))}, proposal,
                     deps.routing, now)
    events = settle(case, deps.policies, deps.calendar_for(case.region))
    if await deps.cases.insert(case, outgoing(case, events)):
        _count(deps, events)
        await schedule_sla(deps, case)
        log.info("case opened", extra={"case_id": case_id, "case_number": number, "by": actor})
    return case_id


async def on_sla_timer(deps: CasesDeps, timer: dict[str, Any]) -> None:
    """An SLA clock may have run out: record each breach once (the domain marks the clock
    breached), which escalates to the supervisor."""
    now = deps.now()

    def breach(case: Case) -> None:
        if case.is_open:
            for clock in clocks_to_fire(case.clocks, now):
                case.record_sla_breach(clock.name, clock.due_at, at=now)

    try:
        await act_on_case(deps, timer["payload"]["case_id"], breach)
    except CaseNotFound:
        return


# Return visits after a repair or a sale have no case to reopen: a dissatisfied one opens a case.
_VISIT_SUBJECTS = {
    "repair_return_visit": "维修回访不满意 / Dissatisfied repair return visit",
    "sales_return_visit": "销售回访不满意 / Dissatisfied sales return visit",
}


async def on_survey_completed(deps: CasesDeps, data: SurveyCompleted, region: str) -> None:
    """A dissatisfied return visit (1 or 2) reopens the case, or opens a follow-up case; a
    dissatisfied repair or sales visit opens a case of its own."""
    if not data.dissatisfied:
        return
    kind = str(data.kind)
    if kind in _VISIT_SUBJECTS:
        about = data.work_order_id or data.contract_id or data.survey_id
        body = f"{data.comment or ''}\n(survey {data.survey_id}, {kind}, about {about})".strip()
        await open_case_from_contact(deps, {
            "contact_id": f"survey:{data.survey_id}", "region": region, "customer_id": data.customer_id,
            "channel": "hotline", "project": data.project, "building": data.building, "unit": data.unit,
            "kind_hint": "complaint", "subject": _VISIT_SUBJECTS[kind], "body": body,
            "received_at": data.completed_at})
        return
    if kind != "case_return_visit" or not data.case_id:
        return
    now = deps.now()
    reason = f"return visit {data.survey_id} dissatisfied"
    if deps.dissatisfied_return_visit == "follow_up":
        original = await deps.cases.get(data.case_id)
        if original is None:
            return
        contact = {"contact_id": f"survey:{data.survey_id}", "region": original.region,
                   "customer_id": original.customer_id, "channel": original.channel,
                   "project": original.project, "building": original.building, "unit": original.unit,
                   "kind_hint": "complaint",
                   "subject": f"回访不满意 / Dissatisfied return visit: {original.case_number}",
                   "body": reason, "received_at": data.completed_at}
        await open_case_from_contact(deps, contact)
        return

    def reopen(case: Case) -> None:
        if case.status.value in ("resolved", "closed", "lesson_recorded"):
            case.reopen(reason, actor=SYSTEM, at=now)

    await act_on_case(deps, data.case_id, reopen)  # an unknown case: retried, then dead-lettered
