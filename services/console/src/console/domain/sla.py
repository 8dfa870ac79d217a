"""SLA clocks as staff read them: time left in the centre's working hours, or how late.

The cases service owns the clocks (when each is due); the console only says how much
working time lies between now and that due time, on the same kind of calendar: Monday to
Friday 09:00-18:00 in China, with the State Council's holidays and make-up days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import chinese_calendar

from console.domain.i18n import CENTRE_ZONE, parse_moment

DAY_START, DAY_END = time(9), time(18)
_MAX_DAYS = 400


def is_workday(day: date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:  # a year the package has no table for yet: Monday to Friday
        return day.weekday() < 5


def working_minutes(start: datetime, end: datetime) -> int:
    """Working minutes from `start` to `end` (negative when `end` is earlier)."""
    if end < start:
        return -working_minutes(end, start)
    a, b = start.astimezone(CENTRE_ZONE), end.astimezone(CENTRE_ZONE)
    total = 0.0
    day = a.date()
    for _ in range(_MAX_DAYS):
        if day > b.date():
            break
        if is_workday(day):
            open_ = datetime.combine(day, DAY_START, CENTRE_ZONE)
            close = datetime.combine(day, DAY_END, CENTRE_ZONE)
            lo, hi = max(open_, a), min(close, b)
            if hi > lo:
                total += (hi - lo).total_seconds() / 60
        day += timedelta(days=1)
    return int(total)


@dataclass(frozen=True)
class ClockView:
    name: str
    state: str  # running | paused | breached | met | late_met
    minutes: int  # working minutes left (running/paused) or overdue (breached)
    due_at: datetime | None
    working: bool


def clock_view(clock: dict[str, Any], now: datetime) -> ClockView:
    due = parse_moment(clock.get("due_at"))
    working = (clock.get("target") or {}).get("unit") != "calendar_hours"
    stopped, breached = parse_moment(clock.get("stopped_at")), parse_moment(clock.get("breached_at"))
    name = str(clock.get("name") or "")
    if stopped is not None:
        return ClockView(name, "late_met" if breached else "met", 0, due, working)
    reference = parse_moment(clock.get("paused_at")) or now
    if due is None:
        return ClockView(name, "running", 0, None, working)
    left = working_minutes(reference, due) if working else int((due - reference).total_seconds() // 60)
    if breached is not None or left < 0 or due <= reference:
        return ClockView(name, "breached", abs(min(left, 0)), due, working)
    return ClockView(name, "paused" if clock.get("paused_at") else "running", left, due, working)


def row_clock(due_at: str | None, now: datetime) -> ClockView | None:
    """The queue's one column: the nearest due time of the case."""
    due = parse_moment(due_at)
    if due is None:
        return None
    return clock_view({"name": "due", "due_at": due.isoformat()}, now)
