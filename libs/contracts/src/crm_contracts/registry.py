"""Every v1 event type: its payload model, its topic, who produces and who consumes it.

`parse_event` is the one way in for every consumer and gateway: it checks the envelope
and the payload and explains what is wrong in words a partner can act on.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from crm_contracts import topics
from crm_contracts.envelope import CloudEvent
from crm_contracts.events import cases, intake, notifications, partner, surveys


@dataclass(frozen=True)
class EventSpec:
    type: str
    data_model: builtins.type[BaseModel]
    topic: str
    producer: str
    consumers: tuple[str, ...]


def _spec(type_: str, data_model: type[BaseModel], topic: str) -> EventSpec:
    return EventSpec(
        type=type_,
        data_model=data_model,
        topic=topic,
        producer=topics.TOPIC_PRODUCER[topic],
        consumers=topics.TOPIC_CONSUMERS[topic],
    )


_CASE = "crm.cases.case"
_SPECS = [
    _spec("crm.partner.customer.upserted.v1", partner.CustomerUpserted, topics.PARTNER_CUSTOMERS),
    _spec("crm.partner.sales.contract-signed.v1", partner.ContractSigned, topics.PARTNER_SALES),
    _spec(
        "crm.partner.project.milestone-reached.v1",
        partner.MilestoneReached,
        topics.PARTNER_PROJECTS,
    ),
    _spec("crm.partner.unit.delivered.v1", partner.UnitDelivered, topics.PARTNER_UNITS),
    _spec("crm.partner.unit.occupancy-changed.v1", partner.OccupancyChanged, topics.PARTNER_UNITS),
    _spec(
        "crm.partner.repair.work-order-completed.v1",
        partner.RepairWorkOrderCompleted,
        topics.PARTNER_REPAIRS,
    ),
    _spec(
        "crm.partner.hotline.call-recorded.v1", partner.HotlineCallRecorded, topics.PARTNER_HOTLINE
    ),
    _spec("crm.partner.forum.post-published.v1", partner.ForumPostPublished, topics.PARTNER_FORUM),
    _spec("crm.intake.contact.received.v1", intake.ContactReceived, topics.INTAKE_CONTACTS),
    _spec(f"{_CASE}.opened.v1", cases.CaseOpened, topics.CASES_CASES),
    _spec(f"{_CASE}.validated.v1", cases.CaseValidated, topics.CASES_CASES),
    _spec(f"{_CASE}.classified.v1", cases.CaseClassified, topics.CASES_CASES),
    _spec(f"{_CASE}.assigned.v1", cases.CaseAssigned, topics.CASES_CASES),
    _spec(f"{_CASE}.escalated.v1", cases.CaseEscalated, topics.CASES_CASES),
    _spec(f"{_CASE}.progress-reported.v1", cases.CaseProgressReported, topics.CASES_CASES),
    _spec(f"{_CASE}.resolved.v1", cases.CaseResolved, topics.CASES_CASES),
    _spec(f"{_CASE}.customer-confirmed.v1", cases.CaseCustomerConfirmed, topics.CASES_CASES),
    _spec(f"{_CASE}.closed.v1", cases.CaseClosed, topics.CASES_CASES),
    _spec(f"{_CASE}.reopened.v1", cases.CaseReopened, topics.CASES_CASES),
    _spec(f"{_CASE}.sla-breached.v1", cases.CaseSlaBreached, topics.CASES_CASES),
    _spec(f"{_CASE}.lesson-recorded.v1", cases.CaseLessonRecorded, topics.CASES_CASES),
    # Additions to v1: the steps of the procedure the first published types did not name.
    _spec(f"{_CASE}.contact-attached.v1", cases.CaseContactAttached, topics.CASES_CASES),
    _spec(f"{_CASE}.assessed.v1", cases.CaseAssessed, topics.CASES_CASES),
    _spec(f"{_CASE}.investigation-started.v1", cases.CaseInvestigationStarted, topics.CASES_CASES),
    _spec(f"{_CASE}.findings-recorded.v1", cases.CaseFindingsRecorded, topics.CASES_CASES),
    _spec(f"{_CASE}.legal-opinion-recorded.v1", cases.CaseLegalOpinionRecorded, topics.CASES_CASES),
    _spec(f"{_CASE}.handling-started.v1", cases.CaseHandlingStarted, topics.CASES_CASES),
    _spec(f"{_CASE}.department-approved.v1", cases.CaseDepartmentApproved, topics.CASES_CASES),
    _spec(f"{_CASE}.waiting-for-customer.v1", cases.CaseWaitingForCustomer, topics.CASES_CASES),
    _spec(f"{_CASE}.customer-responded.v1", cases.CaseCustomerResponded, topics.CASES_CASES),
    _spec(f"{_CASE}.on-site-responded.v1", cases.CaseOnSiteResponded, topics.CASES_CASES),
    _spec(f"{_CASE}.collective-linked.v1", cases.CaseCollectiveLinked, topics.CASES_CASES),
    _spec(
        "crm.cases.collective-incident.detected.v1",
        cases.CollectiveIncidentDetected,
        topics.CASES_CASES,
    ),
    _spec(
        "crm.notifications.notification.sent.v1",
        notifications.NotificationSent,
        topics.NOTIFICATIONS_DELIVERIES,
    ),
    _spec(
        "crm.notifications.notification.failed.v1",
        notifications.NotificationFailed,
        topics.NOTIFICATIONS_DELIVERIES,
    ),
    _spec("crm.surveys.survey.scheduled.v1", surveys.SurveyScheduled, topics.SURVEYS_SURVEYS),
    _spec("crm.surveys.survey.excluded.v1", surveys.SurveyExcluded, topics.SURVEYS_SURVEYS),
    _spec("crm.surveys.survey.completed.v1", surveys.SurveyCompleted, topics.SURVEYS_SURVEYS),
    _spec("crm.surveys.survey.expired.v1", surveys.SurveyExpired, topics.SURVEYS_SURVEYS),
]

EVENT_TYPES: dict[str, EventSpec] = {spec.type: spec for spec in _SPECS}
TYPE_BY_MODEL: dict[type[BaseModel], str] = {spec.data_model: spec.type for spec in _SPECS}


class ContractError(ValueError):
    """An event that breaks the contract. `field` names the first attribute at fault
    (`region`, `data.channel`, ...) or is None when the whole message is unusable."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def spec_for(type_: str) -> EventSpec:
    """The spec of a registered type; ContractError for an unknown one."""
    try:
        return EVENT_TYPES[type_]
    except KeyError:
        raise ContractError(f"type: unknown event type {type_!r}", field="type") from None


def event_type_of(model: type[BaseModel] | BaseModel) -> str:
    """The event type a payload model is published as: `event_type_of(CaseOpened)`."""
    cls = model if isinstance(model, type) else type(model)
    try:
        return TYPE_BY_MODEL[cls]
    except KeyError:
        raise KeyError(f"{cls.__name__} is not the payload of any registered event type") from None


def events_on(topic: str) -> list[EventSpec]:
    """The event types published on one topic."""
    return [spec for spec in _SPECS if spec.topic == topic]


def events_consumed_by(service: str) -> list[EventSpec]:
    """The event types one service subscribes to."""
    return [spec for spec in _SPECS if service in spec.consumers]


MAX_DEPTH = 64
"""How deeply objects and arrays may nest in an event. Real events nest three or four
levels; a deeper one is hostile or broken, and refusing it here, by name, keeps a decoder
or a store from failing on it later with an error nobody catches."""


def parse_event(raw: bytes | str | dict[str, Any]) -> tuple[CloudEvent, BaseModel]:
    """Validate a structured-mode CloudEvent and its payload against the registered model.

    Returns the envelope and the typed payload; raises ContractError naming the field at
    fault, e.g. `data.channel: Input should be 'hotline', 'forum', 'front_desk' or 'letter'`.
    Every failure is a ContractError, whatever broke inside (a RecursionError, an
    OverflowError...): a consumer dead-letters it once instead of retrying it forever.
    """
    try:
        return _parse_event(raw)
    except ContractError:
        raise
    except Exception as exc:  # e.g. RecursionError, OverflowError deep in a validator
        raise ContractError(f"the event cannot be read ({type(exc).__name__}: {str(exc)[:200]})") from None


def decode_json(raw: bytes | str) -> Any:
    """JSON text to Python values, for gateways that accept events or arrays of them:
    ContractError for anything that is not UTF-8 JSON nested at most MAX_DEPTH + 1 deep
    (an array of events adds a level)."""
    try:
        value = _loads(raw)
        _check_depth(value, MAX_DEPTH + 1)
        return value
    except ContractError:
        raise
    except Exception as exc:
        raise ContractError(f"the body cannot be read ({type(exc).__name__})") from None


def _parse_event(raw: bytes | str | dict[str, Any]) -> tuple[CloudEvent, BaseModel]:
    # Fast path, about a third of the exact path's time (a replay validates millions): the
    # envelope parsed and validated in one pass by pydantic's JSON parser, the nesting
    # bounded by counting brackets (a path cannot nest deeper than there are openers).
    # Anything it refuses, however, is read again by the exact path below, so every error
    # keeps its words and field, and where the two parsers differ (a lone surrogate, an
    # int too long for Python) the exact path's verdict stands.
    if isinstance(raw, bytes) and raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH:
        with contextlib.suppress(Exception):  # not lost: the exact path says what is wrong
            event = CloudEvent.model_validate_json(raw)
            return event, spec_for(event.type).data_model.model_validate(event.data)
    return _parse_exact(raw)


def _parse_exact(raw: bytes | str | dict[str, Any]) -> tuple[CloudEvent, BaseModel]:
    document = _decode(raw)
    try:
        event = CloudEvent.model_validate(document)
    except ValidationError as exc:
        raise _contract_error(exc, prefix="") from None
    spec = spec_for(event.type)
    try:
        data = spec.data_model.model_validate(event.data)
    except ValidationError as exc:
        raise _contract_error(exc, prefix="data") from None
    return event, data


def _loads(raw: bytes | str | Any) -> Any:
    if isinstance(raw, bytes | bytearray):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ContractError(f"the event is not UTF-8 text ({exc.reason})") from None
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except RecursionError:
            raise ContractError(f"the event nests deeper than {MAX_DEPTH} levels") from None
        except ValueError as exc:
            raise ContractError(f"the event is not JSON: {str(exc)[:200]}") from None
    return raw


def _decode(raw: bytes | str | dict[str, Any]) -> dict[str, Any]:
    raw = _loads(raw)
    if not isinstance(raw, dict):
        raise ContractError(
            f"the event must be a JSON object (a structured-mode CloudEvent), got {_json_kind(raw)}"
        )
    _check_depth(raw, MAX_DEPTH)
    return raw


def _check_depth(value: Any, limit: int) -> None:
    """ContractError naming the top-level path (`data.notes`) under which `value` nests
    objects or arrays deeper than `limit`; iterative, so no depth can overflow it."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, dict):
            children: Iterable[tuple[str, Any]] = ((f"{path}.{k}" if path else str(k), v) for k, v in node.items())
        elif isinstance(node, list):
            children = ((f"{path}[{i}]", v) for i, v in enumerate(node))
        else:
            continue
        if depth > limit:
            field = _top_path(path)
            raise ContractError(f"{field}: nested deeper than {limit} levels", field=field)
        stack.extend((child, depth + 1, child_path) for child_path, child in children
                     if isinstance(child, dict | list))


def _top_path(path: str) -> str:
    # The first two steps name the field (`data.notes`, `[3].data`); the rest is the attack.
    return ".".join(re.findall(r"\[\d+\]|[^.\[]+", path)[:2]).replace(".[", "[") or "(event)"


def _json_kind(value: Any) -> str:
    kinds = {
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }
    return kinds.get(type(value), "null" if value is None else type(value).__name__)


def _contract_error(exc: ValidationError, *, prefix: str) -> ContractError:
    problems = [
        (_path(prefix, error["loc"]), error["msg"].removeprefix("Value error, "))
        for error in exc.errors()
    ]
    message = "; ".join(f"{path}: {msg}" for path, msg in problems)
    return ContractError(message, field=problems[0][0] if problems else prefix or None)


def _path(prefix: str, loc: Iterable[int | str]) -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path or "(event)"
