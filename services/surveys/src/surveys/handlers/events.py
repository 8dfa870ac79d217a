"""Surveys' outgoing events, built from a survey document with the contract's models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm_contracts import topics
from crm_contracts.envelope import new_event
from crm_contracts.events.surveys import SurveyCompleted, SurveyExcluded, SurveyExpired, SurveyScheduled
from crm_contracts.registry import event_type_of
from crm_runtime.outbox import OutgoingEvent
from pydantic import BaseModel

from surveys.domain import tokens

SOURCE = "/crm/surveys"
_BASE = ("survey_id", "kind", "customer_id", "case_id", "work_order_id", "contract_id", "project", "building",
         "unit", "due_at", "product_type", "campaign_id")


def _base(doc: dict[str, Any]) -> dict[str, Any]:
    return {**{k: doc.get(k) for k in _BASE}, "survey_id": doc["_id"]}


def _outgoing(doc: dict[str, Any], data: BaseModel, tag: str) -> OutgoingEvent:
    # A deterministic id: the same change written twice is the same event for consumers.
    event = new_event(event_type_of(data), source=SOURCE, subject=doc["_id"], region=doc["region"], data=data,
                      id=f"{doc['_id']}:{tag}")
    return OutgoingEvent(topics.SURVEYS_SURVEYS, event)


def answer_path(doc: dict[str, Any], secret: str) -> str:
    return f"/s/{tokens.sign(secret, doc['_id'], doc['nonce'], doc['expires_at'])}"


def scheduled(doc: dict[str, Any], secret: str, *, tag: str, reminder: int = 0) -> OutgoingEvent:
    data = SurveyScheduled(**_base(doc), notice_at=doc.get("notice_at"), opens_at=doc["opens_at"],
                           expires_at=doc["expires_at"], definition_version=doc["definition_version"],
                           answer_path=answer_path(doc, secret), reminder=reminder)
    return _outgoing(doc, data, tag)


def excluded(doc: dict[str, Any], reason: str, detail: str | None, *, tag: str) -> OutgoingEvent:
    return _outgoing(doc, SurveyExcluded(**_base(doc), reason=reason, detail=detail), tag)  # type: ignore[arg-type]


def expired(doc: dict[str, Any], at: datetime) -> OutgoingEvent:
    return _outgoing(doc, SurveyExpired(**_base(doc), expired_at=at), "expired")


def completed(doc: dict[str, Any], response: dict[str, Any]) -> OutgoingEvent:
    data = SurveyCompleted(**_base(doc), scores=response["scores"], nps=response.get("nps"),
                           satisfied=response["satisfied"], dissatisfied=response["dissatisfied"],
                           method=response["mode"], comment=response.get("comment"),
                           completed_at=response["completed_at"], definition_version=doc["definition_version"],
                           answers=response.get("choices", {}))
    return _outgoing(doc, data, "completed")
