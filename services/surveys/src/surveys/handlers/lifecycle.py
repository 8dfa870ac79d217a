"""A survey's life: planned from an event, then scheduled, held (an open complaint) or
excluded; then answered, cancelled or expired.

Every change is one write of the survey document with its event (the outbox); what
follows from it (the worklist row, the timers, the quiet-period record, the coverage
counters) is applied after, by `settle`, which is idempotent and runs again whenever the
same event or timer comes again: a crash between the two loses nothing.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from crm_runtime.outbox import OutgoingEvent
from crm_runtime.revisions import REV, RevisionConflict

from surveys.adapters.quiet import claim_ids
from surveys.adapters.worklist import due_day
from surveys.deps import SurveysDeps
from surveys.domain import coverage, definitions, eligibility, tokens
from surveys.domain.eligibility import Decision, Facts, PastSurvey
from surveys.domain.schedule import WORKLIST_KINDS, Planned, reminder_at
from surveys.handlers import events

log = logging.getLogger(__name__)

OPEN = ("scheduled", "deferred")
TIMERS = ("survey.check", "survey.remind", "survey.expire")


class SurveyNotFound(LookupError):
    pass


class WrongState(ValueError):
    """The survey cannot take this action in its state (answered, expired, ...)."""

    def __init__(self, status: str):
        super().__init__(status)
        self.status = status


def document(p: Planned, now: datetime) -> dict[str, Any]:
    return {
        **{f.name: getattr(p, f.name) for f in dataclasses.fields(p) if f.name != "survey_id"},
        "_id": p.survey_id, "household": p.household,
        "definition_version": definitions.current(p.kind).version,
        "status": "scheduled", "nonce": tokens.new_nonce(), "reminders": 0, "created_at": now,
        "draft": {}, "response": None, "exclusion": None, "deferred": None,
    }


def planned_of(doc: dict[str, Any]) -> Planned:
    names = {f.name for f in dataclasses.fields(Planned)}
    return Planned(**{k: v for k, v in doc.items() if k in names}, survey_id=doc["_id"])  # type: ignore[arg-type]


def quiet_ids(deps: SurveysDeps, p: Planned, customer: dict[str, Any]) -> list[str]:
    homes = [u["key"] for u in customer.get("units") or [] if u.get("key")]
    return claim_ids(p.customer_id, homes, p.household, p.due_at, deps.policy.quiet_days)


async def facts_for(deps: SurveysDeps, p: Planned) -> tuple[Facts, list[str]]:
    """What decides the survey, and the quiet-period documents it would claim."""
    customer = await deps.directory.customer(p.customer_id) or {}
    home = await deps.directory.home(p.household) or {}
    found = [await deps.directory.case(c) for c in customer.get("case_ids", [])]
    cases = [c for c in found if c is not None]
    majors = [c["major_at"] for c in cases if c.get("major_at")]
    # The quiet period's surveys, annual ones included, are in the claim documents.
    ids = quiet_ids(deps, p, customer)
    recent, household_recent = await deps.quiet.recent(ids, p.customer_id, p.household)
    return Facts(
        known=bool(customer.get("known")), consent=bool(customer.get("consent")),
        occupancy=home.get("occupancy"), major_complaint_at=max(majors) if majors else None,
        open_complaints=tuple(c["_id"] for c in cases if c.get("open") and c.get("complaint", True)),
        recent=recent, household_recent=household_recent,
    ), ids


async def claim_quiet(deps: SurveysDeps, p: Planned, facts: Facts, ids: list[str],
                      decision: Decision) -> tuple[Decision, list[str]]:
    """A survey about to be scheduled claims its customer and household for the quiet
    period (exact: see adapters.quiet); if another survey got there first, it is excluded.
    Returns the decision and the documents claimed."""
    if decision.outcome != "schedule" or not eligibility.counts_for_quiet(p.kind):
        return decision, []
    conflict = await deps.quiet.claim(ids, p.survey_id, p.customer_id, p.household, p.due_at,
                                      deps.policy.quiet_days)
    if conflict is None:
        return decision, ids
    return eligibility.decide(p, with_conflict(facts, conflict), deps.policy), []


def with_conflict(facts: Facts, conflict: tuple[str, PastSurvey]) -> Facts:
    whose, past = conflict
    if whose == "customer":
        return dataclasses.replace(facts, recent=(*facts.recent, past))
    return dataclasses.replace(facts, household_recent=(*facts.household_recent, past))


def _apply_decision(doc: dict[str, Any], decision: Decision, deps: SurveysDeps, tag: str,
                    ) -> tuple[dict[str, Any], list[OutgoingEvent]]:
    if decision.outcome == "exclude":
        exclusion = {"reason": decision.reason, "detail": decision.detail}
        return {"status": "excluded", "exclusion": exclusion}, [
            events.excluded(doc, decision.reason or "other", decision.detail, tag=f"excluded:{tag}")]
    if decision.outcome == "defer":
        return {"status": "deferred", "deferred": {"detail": decision.detail}}, []
    return {"status": "scheduled", "deferred": None}, [events.scheduled({**doc, "status": "scheduled"},
                                                                        deps.link_secret, tag=f"scheduled:{tag}")]


async def schedule(deps: SurveysDeps, p: Planned) -> dict[str, Any]:
    """Plan a survey once: a repeat of the same event finds it and only settles it."""
    existing = await deps.surveys.get(p.survey_id)
    note = None
    if existing is None:
        home = await deps.directory.home(p.household)
        if p.product_type is None and home and home.get("fit_out"):
            p = dataclasses.replace(p, product_type=product_type(deps, p.project, p.building, home["fit_out"]))
        facts, ids = await facts_for(deps, p)
        decision, claimed = await claim_quiet(deps, p, facts, ids, eligibility.decide(p, facts, deps.policy))
        doc = document(p, deps.now())
        change, outgoing = _apply_decision(doc, decision, deps, "0")
        doc.update(change, quiet_claims=claimed)
        if p.kind in WORKLIST_KINDS:
            note = await deps.worklist.note(p.survey_id, 0, None, deps.now())
        if await deps.surveys.insert(doc, outgoing):
            log.info("survey planned", extra={"survey_id": p.survey_id, "kind": p.kind, "status": doc["status"]})
            existing = {**doc, REV: 0}
        else:
            existing = await deps.surveys.get(p.survey_id)
    assert existing is not None
    await settle(deps, existing)
    if note:
        await deps.worklist.done(note)
    return existing


def product_type(deps: SurveysDeps, project: str | None, building: str | None, fit_out: str | None) -> str | None:
    return coverage.product_type(deps.product_forms, project, building, fit_out)


Change = Callable[[dict[str, Any]], tuple[dict[str, Any], list[OutgoingEvent]] | None]


async def mutate(deps: SurveysDeps, sid: str, change: Change) -> dict[str, Any]:
    """Apply `change(doc)` (None: nothing to do) in one revision-checked write, then settle."""
    for _ in range(20):
        doc = await deps.surveys.get(sid)
        if doc is None:
            raise SurveyNotFound(sid)
        result = change(doc)
        if result is None:
            await settle(deps, doc)
            return doc
        fields, outgoing = result
        rev = int(doc.get(REV, 0)) + 1
        note = await deps.worklist.note(sid, rev, doc, deps.now()) if doc["kind"] in WORKLIST_KINDS else None
        try:
            await deps.surveys.update(doc, fields, outgoing)
        except RevisionConflict:
            if note:
                await deps.worklist.done(note)
            continue
        new = {**doc, **fields, REV: rev}
        await settle(deps, new, before=doc)
        if note:
            await deps.worklist.done(note)
        return new
    raise RevisionConflict(sid)


async def settle(deps: SurveysDeps, doc: dict[str, Any], before: dict[str, Any] | None = None) -> None:
    """Bring the worklist, timers, quiet-period claims and coverage in line with the
    survey's state (each step idempotent)."""
    sid, status, rev = doc["_id"], doc["status"], int(doc.get(REV, 0))
    on_worklist = doc["kind"] in WORKLIST_KINDS
    if doc.get("campaign_id") is None:
        await deps.directory.add_survey_id(doc["customer_id"], sid)
    if before is not None and on_worklist and before["due_at"] != doc["due_at"]:
        await deps.worklist.remove(before, rev)
    if status == "scheduled":
        if on_worklist:
            await deps.worklist.place(doc, rev)
        p = planned_of(doc)
        if doc.get("check_at") and doc["check_at"] > deps.now():
            await deps.timers.schedule(f"survey.check:{sid}", "survey.check", doc["check_at"], {"survey_id": sid})
        remind = reminder_at(deps.policy, p)
        if remind and doc.get("reminders", 0) == 0 and doc.get("campaign_id") is None:
            await deps.timers.schedule(f"survey.remind:{sid}", "survey.remind", remind, {"survey_id": sid})
        if doc.get("campaign_id") is None:
            await deps.timers.schedule(f"survey.expire:{sid}", "survey.expire", doc["expires_at"],
                                       {"survey_id": sid})
        await deps.coverage.count(doc, "due")
        return
    if on_worklist:
        await deps.worklist.remove(doc, rev)
    if status in ("deferred", "excluded", "cancelled") and doc.get("quiet_claims"):
        await deps.quiet.release(doc["quiet_claims"], sid)
    if status == "deferred":
        return
    for kind in TIMERS:
        await deps.timers.cancel(f"{kind}:{sid}")
    if status == "completed":
        await deps.coverage.count(doc, "done")


async def repair_worklist(deps: SurveysDeps, older_than_s: float) -> int:
    """Finish the worklist moves of survey writes whose writer died in between (a visit
    stored but not listed, or still listed once answered): safe on every replica at once."""
    repaired = 0
    for note in await deps.worklist.notes(deps.now() - timedelta(seconds=older_than_s)):
        doc = await deps.surveys.get(note["survey_id"])
        if doc is not None:
            previous_day = note.get("previous_day")
            if previous_day is not None and previous_day != due_day(doc["due_at"]):
                await deps.worklist.remove(doc, int(doc.get(REV, 0)), day=previous_day)
            await settle(deps, doc)
        await deps.worklist.done(note["_id"])
        repaired += 1
    if repaired:
        log.info("worklist repaired", extra={"writes": repaired})
    return repaired


async def release_held(deps: SurveysDeps, customer_id: str) -> None:
    """A complaint of the customer closed: surveys held for it fall due now (plus the
    policy's deferral), unless another complaint is still open."""
    customer = await deps.directory.customer(customer_id) or {}
    for sid in customer.get("survey_ids", []):
        doc = await deps.surveys.get(sid)
        if doc is None or doc["status"] != "deferred":
            continue
        moved = planned_of(doc).moved(deps.now() + timedelta(days=deps.policy.deferral_days), deps.policy)
        facts, ids = await facts_for(deps, moved)
        decision, claimed = await claim_quiet(deps, moved, facts, ids, eligibility.decide(moved, facts, deps.policy))
        if decision.outcome == "defer":
            continue
        window = {"opens_at": moved.opens_at, "due_at": moved.due_at, "expires_at": moved.expires_at,
                  "notice_at": None, "check_at": None, "quiet_claims": claimed}

        def release(d: dict[str, Any], w: dict[str, Any] = window, dec: Decision = decision):
            if d["status"] != "deferred":
                return None
            fields, outgoing = _apply_decision({**d, **w}, dec, deps, f"released:{d.get(REV, 0)}")
            return {**w, **fields}, outgoing

        await mutate(deps, sid, release)
