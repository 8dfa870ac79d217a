"""What each kind of entity remembers (its facts) and which counters it contributes (its
profile). An event changes an entity's facts; the difference between the profile before
and after is what the event moves in the read models. So a case reassigned from
engineering to sales moves out of engineering's slice and into sales's; a case closed in
April counts in April's closures while its opening stays in March.

Facts are plain JSON-able dicts (times as ISO strings), kept per entity in the store.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from crm_contracts.envelope import CloudEvent

from reporting.domain.cells import (
    ALL,
    Profile,
    clean,
    day_of,
    gauge_cell,
    month_cells,
    parse_time,
    year_cells,
)

Facts = dict[str, Any]

NOT_COMPLAINTS = ("invalid", "consultation")  # closed without handling: no reply obligation
REPLY_CLOCKS = ("first_reply", "progress_update")
RETURN_VISIT_DAYS = 7
PROMOTER, DETRACTOR = 9, 6


def kind_of(event_type: str) -> str | None:
    """Which entity an event type belongs to; its subject (the Kafka key) is the entity id."""
    if event_type.startswith("crm.cases.case."):
        return "case"
    return _KINDS.get(event_type)


_KINDS = {
    "crm.cases.collective-incident.detected.v1": "incident",
    "crm.intake.contact.received.v1": "contact",
    "crm.surveys.survey.scheduled.v1": "survey",
    "crm.surveys.survey.excluded.v1": "survey",
    "crm.surveys.survey.completed.v1": "survey",
    "crm.surveys.survey.expired.v1": "survey",
    "crm.notifications.notification.sent.v1": "notification",
    "crm.notifications.notification.failed.v1": "notification",
    "crm.partner.repair.work-order-completed.v1": "repair",
    "crm.partner.unit.delivered.v1": "units",
    "crm.partner.unit.occupancy-changed.v1": "units",
    "crm.partner.customer.upserted.v1": "customer",
    "crm.partner.sales.contract-signed.v1": "contract",
    "crm.partner.project.milestone-reached.v1": "milestone",
    "crm.partner.hotline.call-recorded.v1": "call",
    "crm.partner.forum.post-published.v1": "post",
}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _earliest(current: str | None, candidate: datetime) -> str:
    if current is None or parse_time(current) > candidate:  # type: ignore[operator]
        return candidate.isoformat()
    return current


# ------------------------------------------------------------------------------- fold


def fold(kind: str, facts: Facts, event: CloudEvent, data: Any) -> Facts:
    """The entity's facts after `event` (a new dict; `facts` is not changed)."""
    new = dict(facts)
    new.setdefault("region", event.region)
    _FOLDS[kind](new, event, data)
    return new


def _fold_case(f: Facts, event: CloudEvent, d: Any) -> None:
    kind = event.type.removeprefix("crm.cases.case.").removesuffix(".v1")
    f["region"] = d.region
    f["first_at"] = _earliest(f.get("first_at"), d.occurred_at)
    seq = d.sequence or 0
    if seq >= f.get("seq", 0):  # the newest step decides where the case stands now
        f["seq"] = seq
        f["status"] = d.status.value
        f["severity"] = d.severity.value if d.severity else f.get("severity")
        f["category"] = d.category.value if d.category else f.get("category")
        f["department"] = d.department or f.get("department")
    if kind == "opened":
        f["opened_at"] = _iso(d.opened_at)
        f["channel"] = d.channel.value
        f["project"] = d.project
    elif kind == "validated":
        f["validity"] = d.outcome.value
    elif kind == "closed":
        if f.get("first_closed_at") is None:  # a reopened case stays in its first closing month
            f["first_closed_at"] = _iso(d.occurred_at)
            f["outcome"] = d.outcome.value
            f["closing_department"] = d.department or f.get("department")
    elif kind == "sla-breached":
        breaches = dict(f.get("breaches") or {})
        # keys are stored field names: no dots, so the due time goes in as epoch seconds
        breaches.setdefault(f"{clean(d.clock)}@{int(d.due_at.timestamp())}", d.occurred_at.isoformat())
        f["breaches"] = breaches
    elif kind == "lesson-recorded":
        lessons = dict(f.get("lessons") or {})
        lessons[clean(event.id)] = {"cause": d.root_cause, "department": d.responsible_department,
                             "at": d.occurred_at.isoformat()}
        f["lessons"] = lessons


def _fold_incident(f: Facts, event: CloudEvent, d: Any) -> None:
    f["region"] = d.region
    f["project"] = d.project
    f["first_at"] = _earliest(f.get("first_at"), d.occurred_at)
    f["severity"] = d.severity.value
    f["category"] = d.category.value
    f["customers"] = max(int(f.get("customers", 0)), d.customer_count)


def _fold_contact(f: Facts, event: CloudEvent, d: Any) -> None:
    f.update(region=d.region, project=d.project, channel=d.channel.value, kind=d.kind_hint.value,
             received_at=d.received_at.isoformat(), duplicate=d.duplicate_of is not None)


def _fold_survey(f: Facts, event: CloudEvent, d: Any) -> None:
    kind = event.type.removeprefix("crm.surveys.survey.").removesuffix(".v1")
    f.update(kind=d.kind.value, project=d.project or f.get("project"))
    # The visit is due from when surveys scheduled it; a survey seen first at a later
    # step was scheduled no later than that event.
    f["scheduled_at"] = _earliest(f.get("scheduled_at"), event.time)
    if kind == "excluded":
        f["excluded"] = d.reason.value
    elif kind == "completed":
        f.update(completed_at=d.completed_at.isoformat(), satisfied=d.satisfied,
                 dissatisfied=d.dissatisfied, nps=d.nps,
                 scores={clean(q): v for q, v in d.scores.items()})
    elif kind == "expired":
        f["expired"] = True


def _fold_notification(f: Facts, event: CloudEvent, d: Any) -> None:
    sent = event.type.endswith(".sent.v1")
    if f.get("status") == "sent" and not sent:
        return  # a late failure report does not undo a delivery
    f.update(channel=d.channel.value, status="sent" if sent else "failed",
             at=(d.sent_at if sent else d.failed_at).isoformat())


def _fold_repair(f: Facts, event: CloudEvent, d: Any) -> None:
    f.update(project=d.project, category=d.category.value, completed_at=d.completed_at.isoformat())


def _fold_units(f: Facts, event: CloudEvent, d: Any) -> None:
    units = {k: dict(v) for k, v in (f.get("units") or {}).items()}
    key = "/".join(clean(x) for x in (d.project, d.building, d.unit))
    unit = units.setdefault(key, {"project": d.project})
    if event.type == "crm.partner.unit.delivered.v1":
        unit.update(fit_out=d.fit_out.value, delivered_day=day_of(d.delivered_at))
    elif unit.get("occupancy_at") is None or parse_time(unit["occupancy_at"]) <= d.changed_at:
        unit.update(occupancy=d.occupancy.value, occupancy_at=d.changed_at.isoformat())
    f["units"] = units


def _fold_simple(field: str, attr: str) -> Callable[[Facts, CloudEvent, Any], None]:
    def fold_(f: Facts, event: CloudEvent, d: Any) -> None:
        f[field] = getattr(d, attr).isoformat()
        f["project"] = getattr(d, "project", None)
        if hasattr(d, "milestone"):
            f["milestone"] = d.milestone.value
        if hasattr(d, "duration_s"):
            f["duration_s"] = d.duration_s

    return fold_


def _fold_customer(f: Facts, event: CloudEvent, d: Any) -> None:
    f["known"] = True


_FOLDS: dict[str, Callable[[Facts, CloudEvent, Any], None]] = {
    "case": _fold_case, "incident": _fold_incident, "contact": _fold_contact,
    "survey": _fold_survey, "notification": _fold_notification, "repair": _fold_repair,
    "units": _fold_units, "customer": _fold_customer,
    "contract": _fold_simple("at", "signed_at"), "milestone": _fold_simple("at", "occurred_at"),
    "call": _fold_simple("at", "started_at"), "post": _fold_simple("at", "published_at"),
}


# ---------------------------------------------------------------------------- profile


def profile(kind: str, facts: Facts) -> dict[tuple[str, str, str], int]:
    """The counters the entity contributes, as (cell, slice, counter) -> value."""
    p = Profile()
    if facts.get("region"):
        _PROFILES[kind](p, facts)
    return p.items


def _case_profile(p: Profile, f: Facts) -> None:
    region, project = f["region"], f.get("project")
    opened = parse_time(f.get("opened_at") or f["first_at"])
    assert opened is not None
    department = f.get("department") or "unassigned"
    cells = month_cells(region, opened, project)
    for counter in ("cases:opened", f"cases:channel:{f.get('channel') or 'unknown'}",
                    f"cases:category:{f.get('category') or 'unclassified'}",
                    f"cases:severity:{f.get('severity') or 'unclassified'}",
                    f"cases:status:{f.get('status') or 'received'}",
                    f"cases:validity:{f.get('validity') or 'pending'}"):
        p.add(cells, counter, department=department)
    for cell in cells:
        p.add_cell(cell, ALL, f"cases:department:{clean(department)}")
    breaches = f.get("breaches") or {}
    for name, at in breaches.items():
        when = parse_time(at)
        assert when is not None
        clock = name.split("@", 1)[0]
        bcells = month_cells(region, when, project)
        p.add(bcells, "sla:breaches", department=department)
        p.add(bcells, f"sla:breaches:{clean(clock)}", department=department)
    closed = parse_time(f.get("first_closed_at"))
    if closed is not None:
        closing = f.get("closing_department") or department
        ccells = month_cells(region, closed, project)
        p.add(ccells, "close:count", department=closing)
        p.add(ccells, "sum:close_minutes", max(0, int((closed - opened).total_seconds() // 60)),
              department=closing)
        p.add(ccells, f"close:outcome:{f.get('outcome') or 'resolved'}", department=closing)
        if f.get("outcome") not in NOT_COMPLAINTS:
            late = any(name.split("@", 1)[0] in REPLY_CLOCKS for name in breaches)
            p.add(ccells, "reply:cases", department=closing)
            p.add(ccells, "reply:late" if late else "reply:timely", department=closing)
    for lesson in (f.get("lessons") or {}).values():
        when = parse_time(lesson["at"])
        assert when is not None
        lcells = month_cells(region, when, project)
        p.add(lcells, "lessons:count", department=lesson["department"])
        p.add(lcells, f"lessons:cause:{clean(lesson['cause'])}", department=lesson["department"])


def _incident_profile(p: Profile, f: Facts) -> None:
    when = parse_time(f["first_at"])
    assert when is not None
    cells = month_cells(f["region"], when, f.get("project"))
    p.add(cells, "incidents:count")
    p.add(cells, f"incidents:severity:{f['severity']}")
    p.add(cells, f"incidents:category:{f['category']}")
    p.add(cells, "sum:incident_customers", int(f.get("customers", 0)))


def _contact_profile(p: Profile, f: Facts) -> None:
    when = parse_time(f["received_at"])
    assert when is not None
    cells = month_cells(f["region"], when, f.get("project"))
    p.add(cells, "contacts:total")
    p.add(cells, f"contacts:channel:{f['channel']}")
    p.add(cells, f"contacts:kind:{f['kind']}")
    p.add(cells, f"contacts:channel_kind:{f['channel']}:{f['kind']}")
    if f.get("duplicate"):
        p.add(cells, "contacts:duplicates")


def _survey_profile(p: Profile, f: Facts) -> None:
    region, project, kind = f["region"], f.get("project"), f["kind"]
    scheduled = parse_time(f.get("scheduled_at"))
    completed = parse_time(f.get("completed_at"))
    if kind == "case_return_visit" and scheduled is not None and not f.get("excluded"):
        cells = month_cells(region, scheduled, project)
        p.add(cells, "visits:due")
        if completed is not None and completed - scheduled <= timedelta(days=RETURN_VISIT_DAYS):
            p.add(cells, "visits:within_7d")
    if completed is None:
        return
    cells = month_cells(region, completed, project)
    p.add(cells, f"surveys:{kind}:completed")
    if f.get("satisfied"):
        p.add(cells, f"surveys:{kind}:satisfied")
    if f.get("dissatisfied"):
        p.add(cells, f"surveys:{kind}:dissatisfied")
    nps = f.get("nps")
    if nps is not None:
        for scope in ("all", kind):
            p.add(cells, f"nps:{scope}:responses")
            if nps >= PROMOTER:
                p.add(cells, f"nps:{scope}:promoters")
            elif nps <= DETRACTOR:
                p.add(cells, f"nps:{scope}:detractors")
    if kind == "annual":
        ycells = year_cells(region, completed, project)
        for question, score in (f.get("scores") or {}).items():
            p.add(ycells, f"annual:{clean(question)}:responses")
            if score >= 4:
                p.add(ycells, f"annual:{clean(question)}:satisfied")


def _notification_profile(p: Profile, f: Facts) -> None:
    when = parse_time(f["at"])
    assert when is not None
    p.add(month_cells(f["region"], when, None), f"notifications:{f['status']}:{f['channel']}")


def _repair_profile(p: Profile, f: Facts) -> None:
    when = parse_time(f["completed_at"])
    assert when is not None
    region, project = f["region"], f["project"]
    cells = month_cells(region, when, project)
    p.add(cells, "repairs:completed")
    p.add(cells, f"repairs:category:{f['category']}")
    p.add_cell(gauge_cell(region, project), ALL, f"repairs:day:{day_of(when)}")


def _units_profile(p: Profile, f: Facts) -> None:
    region = f["region"]
    for unit in (f.get("units") or {}).values():
        halves = 1 if unit.get("fit_out") == "bare" else 2  # a bare-shell home counts half
        cells = (gauge_cell(region), gauge_cell(region, unit["project"]))
        if unit.get("delivered_day"):
            p.add(cells, "households:delivered_halves", halves)
            p.add_cell(cells[1], ALL, f"deliveries:day:{unit['delivered_day']}")
        if unit.get("occupancy") == "occupied":
            p.add(cells, "households:moved_in_halves", halves)
        p.add_cell(cells[0], ALL, f"projects:{clean(unit['project'])}")


def _customer_profile(p: Profile, f: Facts) -> None:
    p.add((gauge_cell(f["region"]),), "customers:known")


def _simple_profile(counter: str) -> Callable[[Profile, Facts], None]:
    def profile_(p: Profile, f: Facts) -> None:
        when = parse_time(f["at"])
        assert when is not None
        cells = month_cells(f["region"], when, f.get("project"))
        name = counter.format(milestone=f.get("milestone"))
        p.add(cells, name)
        if f.get("duration_s") is not None:
            p.add(cells, "sum:hotline_seconds", int(f["duration_s"]))

    return profile_


_PROFILES: dict[str, Callable[[Profile, Facts], None]] = {
    "case": _case_profile, "incident": _incident_profile, "contact": _contact_profile,
    "survey": _survey_profile, "notification": _notification_profile, "repair": _repair_profile,
    "units": _units_profile, "customer": _customer_profile,
    "contract": _simple_profile("sales:contracts"), "milestone": _simple_profile("milestones:{milestone}"),
    "call": _simple_profile("hotline:calls"), "post": _simple_profile("forum:posts"),
}
