"""Answering a survey in its three modes (an agent's phone interview, a home-visit record,
the customer's own page), drafts for the page, new links, cancelling, and the timers."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crm_runtime.revisions import REV

from surveys.deps import SurveysDeps
from surveys.domain import answers, definitions, eligibility, tokens
from surveys.handlers import events
from surveys.handlers.lifecycle import OPEN, WrongState, facts_for, mutate, planned_of

log = logging.getLogger(__name__)

MODES = ("phone", "home_visit", "online")


@dataclass(frozen=True)
class Answer:
    mode: str  # phone | home_visit | online
    answers: dict[str, Any]
    actor: str  # the agent, or "customer" on the page
    visit_record: dict[str, Any] | None = None  # the written record of a home visit


def definition_of(doc: dict[str, Any]) -> definitions.Definition:
    return definitions.get(doc["kind"], int(doc["definition_version"]))


async def record_answer(deps: SurveysDeps, survey_id: str, answer: Answer) -> dict[str, Any]:
    """Validate against the version the survey asks, score, and complete it with
    `survey.completed` in the same write. `InvalidAnswer` names the question at fault."""
    now = deps.now()

    def complete(doc: dict[str, Any]):
        if doc["status"] != "scheduled":
            raise WrongState(doc["status"])
        definition = definition_of(doc)
        clean = answers.validate(definition, answer.answers, complete=True)
        result = answers.score(definition, clean)
        response = {"mode": answer.mode, "answers": clean, "scores": result.scores, "nps": result.nps,
                    "choices": result.choices, "comment": result.comment, "satisfied": result.satisfied,
                    "dissatisfied": result.dissatisfied, "completed_at": now, "by": answer.actor,
                    "visit_record": answer.visit_record, "definition_version": definition.version}
        return {"status": "completed", "response": response, "draft": {}}, [events.completed(doc, response)]

    doc = await mutate(deps, survey_id, complete)
    log.info("survey answered", extra={"survey_id": survey_id, "mode": answer.mode,
                                       "dissatisfied": doc["response"]["dissatisfied"]})
    return doc


async def save_draft(deps: SurveysDeps, survey_id: str, partial: dict[str, Any]) -> dict[str, Any]:
    """The page saved half way: kept, valid as far as it goes, for the customer to resume."""

    def keep(doc: dict[str, Any]):
        if doc["status"] != "scheduled":
            raise WrongState(doc["status"])
        clean = answers.validate(definition_of(doc), partial, complete=False)
        return {"draft": {**(doc.get("draft") or {}), **clean}}, []

    return await mutate(deps, survey_id, keep)


async def new_link(deps: SurveysDeps, survey_id: str) -> tuple[str, datetime]:
    """A fresh link; the survey's earlier links stop working."""
    nonce = tokens.new_nonce()

    def rotate(doc: dict[str, Any]):
        if doc["status"] not in OPEN:
            raise WrongState(doc["status"])
        return {"nonce": nonce}, []

    doc = await mutate(deps, survey_id, rotate)
    return events.answer_path(doc, deps.link_secret), doc["expires_at"]


def survey_for_token(doc: dict[str, Any] | None, claims: tokens.TokenClaims) -> dict[str, Any]:
    """The survey a verified link may answer, or `TokenRefused` (used, replaced, closed)."""
    if doc is None:
        raise tokens.TokenRefused("forged")
    if doc["status"] == "completed":
        raise tokens.TokenRefused("used")
    if doc["status"] == "expired":
        raise tokens.TokenRefused("expired")
    if doc["status"] != "scheduled":
        raise tokens.TokenRefused("closed")
    if doc["nonce"] != claims.nonce:
        raise tokens.TokenRefused("used")  # a newer link was sent
    return doc


async def cancel(deps: SurveysDeps, survey_id: str, reason: str, actor: str) -> dict[str, Any]:
    def stop(doc: dict[str, Any]):
        if doc["status"] not in OPEN:
            raise WrongState(doc["status"])
        exclusion = {"reason": "other", "detail": reason, "by": actor}
        return {"status": "cancelled", "exclusion": exclusion}, [
            events.excluded(doc, "other", reason, tag=f"cancelled:{doc.get(REV, 0)}")]

    return await mutate(deps, survey_id, stop)


# ------------------------------------------------------------------------------ timers


async def on_check(deps: SurveysDeps, timer: dict[str, Any]) -> None:
    """Just before the notice of a 3-month or 1-year visit: is the customer still eligible?"""
    sid = timer["payload"]["survey_id"]
    doc = await deps.surveys.get(sid)
    if doc is None or doc["status"] != "scheduled":
        return
    facts, _ = await facts_for(deps, planned_of(doc))
    decision = eligibility.decide(planned_of(doc), facts, deps.policy)

    def recheck(d: dict[str, Any]):
        if d["status"] != "scheduled" or decision.outcome == "schedule":
            return None
        if decision.outcome == "defer":
            return {"status": "deferred", "deferred": {"detail": decision.detail}}, []
        return {"status": "excluded", "exclusion": {"reason": decision.reason, "detail": decision.detail}}, [
            events.excluded(d, decision.reason or "other", decision.detail, tag="excluded:check")]

    await mutate(deps, sid, recheck)


async def on_remind(deps: SurveysDeps, timer: dict[str, Any]) -> None:
    """Still unanswered: `survey.scheduled` again with `reminder` = 1, the same link."""

    def remind(d: dict[str, Any]):
        if d["status"] != "scheduled" or d.get("reminders", 0) >= 1:
            return None
        return {"reminders": 1}, [events.scheduled(d, deps.link_secret, tag="reminder:1", reminder=1)]

    await mutate(deps, timer["payload"]["survey_id"], remind)


async def on_expire(deps: SurveysDeps, timer: dict[str, Any]) -> None:
    await expire(deps, timer["payload"]["survey_id"])


async def expire(deps: SurveysDeps, survey_id: str) -> None:
    now = deps.now()

    def close(d: dict[str, Any]):
        if d["status"] not in OPEN or d["expires_at"] > now:
            return None
        return {"status": "expired", "expired_at": now}, [events.expired(d, now)]

    await mutate(deps, survey_id, close)
