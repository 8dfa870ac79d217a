"""The case aggregate to and from its MongoDB document (all storage mapping lives in the
adapters; the domain knows nothing of documents). Datetimes stay datetimes; pymongo hands
them back naive, in UTC, and they come back aware."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from cases.domain.procedure import Case, CaseStatus, Procedure, Validity
from cases.domain.records import (
    Approval,
    Assessment,
    Closure,
    Escalation,
    Findings,
    LegalOpinion,
    Lesson,
    Resolution,
    TimelineEntry,
    aware,
)
from cases.domain.severity import Category, Severity
from cases.domain.sla import SlaClock, SlaTarget


def _plain(value: Any) -> Any:
    """Records to storage-friendly dicts: tuples become lists, datetimes stay datetimes."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _record(cls: type, data: Mapping[str, Any] | None) -> Any:
    """Inverse of `_plain` for the small frozen records below."""
    if data is None:
        return None
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value, hint = data[f.name], hints[f.name]
        args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        if datetime in args:
            value = aware(value)
        elif typing.get_origin(hint) is tuple:
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def case_to_doc(case: Case) -> dict[str, Any]:
    """Plain data for the case document (datetimes kept; no pending events: they go
    to the outbox field the adapter writes in the same document)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(case):
        if f.name == "pending_events":
            continue
        value = getattr(case, f.name)
        if f.name == "clocks":
            out[f.name] = {k: clock_to_doc(c) for k, c in value.items()}
        elif isinstance(value, StrEnum):
            out[f.name] = value.value
        else:
            out[f.name] = _plain(value)
    return out


def case_from_doc(d: Mapping[str, Any]) -> Case:
    def enum(kind: type, key: str) -> Any:
        return kind(d[key]) if d.get(key) is not None else None

    opened_at = aware(d["opened_at"])
    assert opened_at is not None
    return Case(
        case_id=d["case_id"],
        case_number=d["case_number"],
        region=d["region"],
        status=CaseStatus(d["status"]),
        opened_at=opened_at,
        customer_id=d.get("customer_id"),
        contact_ids=list(d.get("contact_ids", [])),
        channel=d.get("channel"),
        project=d.get("project"),
        building=d.get("building"),
        unit=d.get("unit"),
        kind_hint=d.get("kind_hint"),
        subject=d.get("subject"),
        body=d.get("body"),
        received_at=aware(d.get("received_at")),
        validity=enum(Validity, "validity"),
        validation_explanation=d.get("validation_explanation"),
        severity=Severity(d.get("severity") or "general"),
        severity_confirmed=bool(d.get("severity_confirmed")),
        severity_reasons=list(d.get("severity_reasons", [])),
        category=Category(d.get("category") or "other"),
        procedure=enum(Procedure, "procedure"),
        department=d.get("department"),
        assignee=d.get("assignee"),
        assessment=_record(Assessment, d.get("assessment")),
        findings=_record(Findings, d.get("findings")),
        legal_opinion=_record(LegalOpinion, d.get("legal_opinion")),
        handling_plan=d.get("handling_plan"),
        first_reply_at=aware(d.get("first_reply_at")),
        last_progress_at=aware(d.get("last_progress_at")),
        progress_count=int(d.get("progress_count", 0)),
        resolution=_record(Resolution, d.get("resolution")),
        customer_accepted=d.get("customer_accepted"),
        department_approval=_record(Approval, d.get("department_approval")),
        closure=_record(Closure, d.get("closure")),
        lesson=_record(Lesson, d.get("lesson")),
        escalations=[_record(Escalation, e) for e in d.get("escalations", [])],
        crisis_escalated_at=aware(d.get("crisis_escalated_at")),
        on_site_responded_at=aware(d.get("on_site_responded_at")),
        waiting_for_customer=bool(d.get("waiting_for_customer")),
        collective_incident_id=d.get("collective_incident_id"),
        reopen_count=int(d.get("reopen_count", 0)),
        timeline=[_record(TimelineEntry, t) for t in d.get("timeline", [])],
        clocks={k: clock_from_doc(c) for k, c in (d.get("clocks") or {}).items()},
        version=int(d.get("version", 0)),
        kind_confidence=d.get("kind_confidence"),
    )


def clock_to_doc(clock: SlaClock) -> dict[str, Any]:
    return {
        "name": clock.name,
        "target": clock.target.to_dict(),
        "started_at": clock.started_at,
        "due_at": clock.due_at,
        "paused_at": clock.paused_at,
        "paused_total_s": clock.paused_total.total_seconds(),
        "stopped_at": clock.stopped_at,
        "breached_at": clock.breached_at,
    }


def clock_from_doc(d: Mapping[str, Any]) -> SlaClock:
    started, due = aware(d["started_at"]), aware(d["due_at"])
    assert started is not None and due is not None
    return SlaClock(
        name=d["name"],
        target=SlaTarget.parse(d["target"]),
        started_at=started,
        due_at=due,
        paused_at=aware(d.get("paused_at")),
        paused_total=timedelta(seconds=d.get("paused_total_s", 0)),
        stopped_at=aware(d.get("stopped_at")),
        breached_at=aware(d.get("breached_at")),
    )
