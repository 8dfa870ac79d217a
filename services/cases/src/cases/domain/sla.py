"""SLA clocks: how long the centre may take to reply, report progress and resolve.

Why: "complaint reply timeliness, every department: 100 %" is the centre's first KPI
(docs/domain.md, section 4). A clock per obligation turns that into due times the service can
store, sort the queue by, and fire on when they pass.

Targets per severity (defaults below; every region can override any of them):

| severity | first reply       | progress update   | resolution      | on-site response |
|----------|-------------------|-------------------|-----------------|------------------|
| general  | 4 working hours   | every 2 work days | 5 working days  | -                |
| major    | 2 working hours   | every 1 work day  | 3 working days  | -                |
| crisis   | 1 hour            | every 4 hours     | 2 working days  | 2 hours          |

Working time is counted on the region's `BusinessCalendar`; "N working days" means N times
the length of one working day (9 h with 09:00-18:00). Crisis reply, progress and on-site
targets are plain calendar hours: a crisis does not wait for Monday.

Which case events drive which clocks (`clock_actions`; `procedure.settle` runs `apply_events`
after every command, and the adapter stores both in the same document write):
- opened                  -> start first_reply and resolution
- classified              -> re-target running clocks to the (new) severity's policy
- escalated, reason crisis-> start on_site (once)
- on-site-responded       -> stop on_site
- progress-reported       -> stop first_reply; (re)start progress_update
- resolved                -> stop resolution and progress_update
- reopened                -> (re)start resolution and progress_update
- closed                  -> stop every clock
- waiting-for-customer    -> pause every running clock; customer-responded -> resume them
- sla-breached            -> mark that clock breached (so it fires once)
Only a progress report stops the first-reply clock: it is the one customer-visible reply.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from . import events as ev
from .calendar import BusinessCalendar
from .severity import Severity


class ClockName(StrEnum):
    FIRST_REPLY = "first_reply"
    PROGRESS_UPDATE = "progress_update"
    RESOLUTION = "resolution"
    ON_SITE = "on_site"


class Unit(StrEnum):
    WORKING_HOURS = "working_hours"
    WORKING_DAYS = "working_days"
    CALENDAR_HOURS = "calendar_hours"


_SHORT_UNITS = {"wh": Unit.WORKING_HOURS, "wd": Unit.WORKING_DAYS, "h": Unit.CALENDAR_HOURS}


@dataclass(frozen=True)
class SlaTarget:
    value: float
    unit: Unit

    @property
    def working(self) -> bool:
        return self.unit is not Unit.CALENDAR_HOURS

    def span(self, calendar: BusinessCalendar) -> timedelta:
        """The target as a duration (working time for working units)."""
        if self.unit is Unit.WORKING_DAYS:
            return calendar.working_day_length() * self.value
        return timedelta(hours=self.value)

    def due(self, start: datetime, calendar: BusinessCalendar) -> datetime:
        if self.working:
            return calendar.add_working_time(start, self.span(calendar))
        return start + self.span(calendar)

    @classmethod
    def parse(cls, value: SlaTarget | str | Mapping[str, Any]) -> SlaTarget:
        """`SlaTarget`, `{"value": 4, "unit": "working_hours"}` or a short form:
        "4wh" (working hours), "2wd" (working days), "2h" (calendar hours)."""
        if isinstance(value, SlaTarget):
            return value
        if isinstance(value, Mapping):
            return cls(float(value["value"]), Unit(value["unit"]))
        text = value.strip().lower()
        for suffix in ("wh", "wd", "h"):
            if text.endswith(suffix):
                return cls(float(text[: -len(suffix)]), _SHORT_UNITS[suffix])
        raise ValueError(f"unreadable SLA target {value!r}; use e.g. 4wh, 2wd or 2h")

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "unit": self.unit.value}


def _t(text: str) -> SlaTarget:
    return SlaTarget.parse(text)


@dataclass(frozen=True)
class SlaPolicy:
    first_reply: SlaTarget
    progress_update: SlaTarget
    resolution: SlaTarget
    on_site: SlaTarget | None = None

    def target(self, name: str) -> SlaTarget | None:
        return getattr(self, ClockName(name).value)

    def merged(self, changes: Mapping[str, Any]) -> SlaPolicy:
        unknown = set(changes) - {c.value for c in ClockName}
        if unknown:
            raise ValueError(f"unknown SLA clocks: {sorted(unknown)}")
        parsed: dict[str, Any] = {
            k: (SlaTarget.parse(v) if v is not None else None) for k, v in changes.items()
        }
        return replace(self, **parsed)


DEFAULT_POLICIES: dict[Severity, SlaPolicy] = {
    Severity.GENERAL: SlaPolicy(_t("4wh"), _t("2wd"), _t("5wd")),
    Severity.MAJOR: SlaPolicy(_t("2wh"), _t("1wd"), _t("3wd")),
    Severity.CRISIS: SlaPolicy(_t("1h"), _t("4h"), _t("2wd"), on_site=_t("2h")),
}


@dataclass(frozen=True)
class SlaPolicies:
    """Defaults per severity plus per-region overrides (a region's entry wins)."""

    defaults: Mapping[Severity, SlaPolicy] = field(default_factory=lambda: dict(DEFAULT_POLICIES))
    regions: Mapping[str, Mapping[Severity, SlaPolicy]] = field(default_factory=dict)

    def policy_for(self, region: str | None, severity: str | Severity | None) -> SlaPolicy:
        sev = Severity(severity) if severity else Severity.GENERAL
        regional = self.regions.get(region or "", {})
        return regional.get(sev) or self.defaults[sev]

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None = None) -> SlaPolicies:
        """`{"defaults": {"general": {"first_reply": "3wh"}},
        "regions": {"shenzhen": {"major": {"resolution": "2wd"}}}}` — partial entries are
        merged over the built-in defaults (regions over the merged defaults)."""
        config = config or {}
        defaults = dict(DEFAULT_POLICIES)
        for sev, changes in (config.get("defaults") or {}).items():
            defaults[Severity(sev)] = defaults[Severity(sev)].merged(changes)
        regions: dict[str, dict[Severity, SlaPolicy]] = {}
        for region, per_sev in (config.get("regions") or {}).items():
            regions[region] = {
                Severity(sev): defaults[Severity(sev)].merged(changes)
                for sev, changes in per_sev.items()
            }
        return cls(defaults, regions)


# -- clocks -----------------------------------------------------------------------------


def _aware(value: Any) -> datetime | None:
    """Datetimes back from storage: ISO strings, or naive UTC (as pymongo returns them)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


@dataclass(frozen=True)
class SlaClock:
    """One running obligation. Immutable: every operation returns a new clock.

    `due_at` is what the adapter stores as the timer's due time (only while `active`).
    `paused_total` is in the clock's own unit: working time for working-time targets.
    """

    name: str
    target: SlaTarget
    started_at: datetime
    due_at: datetime
    paused_at: datetime | None = None
    paused_total: timedelta = timedelta(0)
    stopped_at: datetime | None = None
    breached_at: datetime | None = None

    @property
    def paused(self) -> bool:
        return self.paused_at is not None

    @property
    def stopped(self) -> bool:
        return self.stopped_at is not None

    @property
    def breached(self) -> bool:
        return self.breached_at is not None

    @property
    def active(self) -> bool:
        """Counting down and not yet reported as breached: the timer should exist."""
        return not (self.stopped or self.paused or self.breached)


def start_clock(name: str, at: datetime, policy: SlaPolicy, calendar: BusinessCalendar) -> SlaClock:
    target = policy.target(name)
    if target is None:
        raise ValueError(f"the SLA policy has no {name} target")
    return SlaClock(
        name=str(ClockName(name)), target=target, started_at=at, due_at=target.due(at, calendar)
    )


def pause(clock: SlaClock, at: datetime) -> SlaClock:
    """Stop counting (the case waits for the customer). Idempotent."""
    if clock.paused or clock.stopped:
        return clock
    return replace(clock, paused_at=at)


def resume(clock: SlaClock, at: datetime, calendar: BusinessCalendar) -> SlaClock:
    """Count again; the due time moves by the (working) time spent paused."""
    if not clock.paused or clock.stopped:
        return clock
    paused_at = clock.paused_at
    assert paused_at is not None
    if clock.target.working:
        spent = calendar.working_time_between(paused_at, at)
        if paused_at < clock.due_at:
            remaining = calendar.working_time_between(paused_at, clock.due_at)
            due = calendar.add_working_time(at, remaining)
        else:  # already overdue when paused: nothing left to push
            due = clock.due_at
    else:
        spent = max(at - paused_at, timedelta(0))
        due = clock.due_at + spent if paused_at < clock.due_at else clock.due_at
    return replace(clock, paused_at=None, paused_total=clock.paused_total + spent, due_at=due)


def stop(clock: SlaClock, at: datetime) -> SlaClock:
    """The obligation was met (or no longer applies). Idempotent."""
    if clock.stopped:
        return clock
    return replace(clock, stopped_at=at, paused_at=None)


def mark_breached(clock: SlaClock, at: datetime) -> SlaClock:
    return clock if clock.breached else replace(clock, breached_at=at)


def retarget(clock: SlaClock, target: SlaTarget, calendar: BusinessCalendar) -> SlaClock:
    """Apply a new target (severity changed) from the original start, keeping pauses."""
    if clock.stopped or clock.breached or target == clock.target:
        return clock
    base = target.due(clock.started_at, calendar)
    if target.working == clock.target.working:
        pushed = clock.paused_total
    else:  # unit family changed: the paused span is not comparable; ignore it
        pushed = timedelta(0)
    due = calendar.add_working_time(base, pushed) if target.working else base + pushed
    return replace(clock, target=target, due_at=due)


def is_breached(clock: SlaClock, now: datetime) -> bool:
    """Has the deadline passed without the obligation being met (as of `now`)?"""
    if clock.breached:
        return True
    if clock.stopped_at is not None:
        return clock.stopped_at > clock.due_at
    if clock.paused_at is not None:
        return clock.paused_at >= clock.due_at
    return now >= clock.due_at


def should_fire(clock: SlaClock, now: datetime) -> bool:
    """The timer check: active and past due. Fire = `Case.record_sla_breach`."""
    return clock.active and now >= clock.due_at


def next_due(clocks: Mapping[str, SlaClock]) -> datetime | None:
    """Earliest due time among active clocks: store it as the case's `sla_due_at`."""
    dues = [c.due_at for c in clocks.values() if c.active]
    return min(dues) if dues else None


def clocks_to_fire(clocks: Mapping[str, SlaClock], now: datetime) -> list[SlaClock]:
    return sorted((c for c in clocks.values() if should_fire(c, now)), key=lambda c: c.due_at)


# -- events -> clocks -------------------------------------------------------------------

START, STOP, PAUSE, RESUME, RETARGET, BREACH = (
    "start",
    "stop",
    "pause",
    "resume",
    "retarget",
    "breach",
)
_ALL = "*"


def clock_actions(event_type: str, payload: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(operation, clock name or "*") pairs an event causes; see the module table."""
    match event_type:
        case ev.CASE_OPENED:
            return [(START, ClockName.FIRST_REPLY), (START, ClockName.RESOLUTION)]
        case ev.CASE_CLASSIFIED:
            return [(RETARGET, _ALL)]
        case ev.CASE_ESCALATED if payload.get("reason") == "crisis":
            return [(START, ClockName.ON_SITE)]
        case ev.CASE_ON_SITE_RESPONDED:
            return [(STOP, ClockName.ON_SITE)]
        case ev.CASE_PROGRESS_REPORTED:
            return [(STOP, ClockName.FIRST_REPLY), (START, ClockName.PROGRESS_UPDATE)]
        case ev.CASE_RESOLVED:
            return [(STOP, ClockName.RESOLUTION), (STOP, ClockName.PROGRESS_UPDATE)]
        case ev.CASE_REOPENED:
            return [(START, ClockName.RESOLUTION), (START, ClockName.PROGRESS_UPDATE)]
        case ev.CASE_CLOSED:
            return [(STOP, _ALL)]
        case ev.CASE_WAITING_FOR_CUSTOMER:
            return [(PAUSE, _ALL)]
        case ev.CASE_CUSTOMER_RESPONDED:
            return [(RESUME, _ALL)]
        case ev.CASE_SLA_BREACHED:
            return [(BREACH, str(payload["clock"]))]
    return []


def apply_events(
    clocks: Mapping[str, SlaClock],
    events: Iterable[tuple[str, Mapping[str, Any]]],
    policies: SlaPolicies,
    calendar: BusinessCalendar,
) -> dict[str, SlaClock]:
    """The case's clocks after `events` (a case's `pending_events`, in order).

    Pure: the policy comes from each event's region and severity, the time from its
    `occurred_at`. A clock started while the case waits for the customer starts paused.
    Starting the on-site clock twice keeps the first one.
    """
    result = dict(clocks)
    for event_type, payload in events:
        at = _aware(payload["occurred_at"])
        assert at is not None
        policy = policies.policy_for(payload.get("region"), payload.get("severity"))
        waiting = bool(payload.get("waiting_for_customer"))
        for op, name in clock_actions(event_type, payload):
            names = list(result) if name == _ALL else [name]
            for n in names:
                clock = result.get(n)
                if op == START:
                    if n == ClockName.ON_SITE and clock is not None:
                        continue
                    if policy.target(n) is None:
                        continue
                    new = start_clock(n, at, policy, calendar)
                    result[n] = pause(new, at) if waiting else new
                elif clock is None:
                    continue
                elif op == STOP:
                    result[n] = stop(clock, at)
                elif op == PAUSE:
                    result[n] = pause(clock, at)
                elif op == RESUME:
                    result[n] = resume(clock, at, calendar)
                elif op == BREACH:
                    result[n] = mark_breached(clock, at)
                elif op == RETARGET:
                    target = policy.target(n)
                    if target is not None:
                        result[n] = retarget(clock, target, calendar)
    return result
