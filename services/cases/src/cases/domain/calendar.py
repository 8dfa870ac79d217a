"""Business calendars: when a region's customer centre is at work.

Why: SLA clocks (first reply, progress, resolution) count *working* time, and in mainland
China that is not simply Monday to Friday. Around public holidays the State Council moves
days: the National Day week is off, and a Saturday or Sunday next to it becomes a make-up
working day (调休). We use the maintained `chinese_calendar` package for that table.

Rules, in the order they are applied to a date:
1. the region's own overrides win: `extra_workdays` (e.g. a site open day on a Sunday)
   and `extra_holidays` (e.g. a local holiday);
2. inside the years `chinese_calendar` knows (see `holiday_table_years()`), its
   `is_workday` decides: public holidays off, make-up days on;
3. outside those years (the package is updated each year when the State Council publishes
   the next year's dates) we fall back to "Monday to Friday" so nothing crashes on
   1 January; a region that knows the dates early adds them as overrides.

Within a working day the centre works `working_hours` (default 09:00-18:00 local time),
optionally minus a `lunch_break`. All datetimes must be timezone-aware; results are given
in the calendar's time zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import chinese_calendar
from chinese_calendar.constants import holidays as _cc_holidays

# How far we search for the next working minute before deciding the calendar has none.
_MAX_DAYS_SEARCHED = 366 * 5


@cache  # the installed table does not change while we run; computing it was most of an SLA due time
def holiday_table_years() -> tuple[int, int]:
    """First and last year the installed `chinese_calendar` has official dates for."""
    years = [d.year for d in _cc_holidays]
    return min(years), max(years)


@cache  # the same few days are asked for by every clock of every case (a backlog: thousands)
def _official_workday(day: date) -> bool:
    return bool(chinese_calendar.is_workday(day))


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _require_aware(dt: datetime, what: str = "datetime") -> None:
    if dt.tzinfo is None or dt.tzinfo.utcoffset(dt) is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {dt.isoformat()}")


def _parse_time(value: time | str) -> time:
    return value if isinstance(value, time) else time.fromisoformat(value)


def _parse_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


@dataclass(frozen=True)
class BusinessCalendar:
    """A region's working time. Immutable; build a new one to change it."""

    working_hours: tuple[time, time] = (time(9), time(18))
    lunch_break: tuple[time, time] | None = None
    tz: str = "Asia/Shanghai"
    # any set may be passed; stored as frozensets
    extra_holidays: AbstractSet[date] = field(default_factory=frozenset)
    extra_workdays: AbstractSet[date] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        start, end = self.working_hours
        if not start < end:
            raise ValueError(f"working hours must start before they end: {start}-{end}")
        if self.lunch_break is not None:
            ls, le = self.lunch_break
            if not (start < ls < le < end):
                raise ValueError(f"lunch break {ls}-{le} must lie inside working hours")
        object.__setattr__(self, "extra_holidays", frozenset(self.extra_holidays))
        object.__setattr__(self, "extra_workdays", frozenset(self.extra_workdays))
        overlap = self.extra_holidays & self.extra_workdays
        if overlap:
            raise ValueError(f"dates both holiday and workday: {sorted(overlap)}")
        _zone(self.tz)  # fail early on an unknown zone

    # -- configuration -------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None = None) -> BusinessCalendar:
        """Build from plain data (as stored per region), e.g.
        `{"working_hours": ["09:00", "18:00"], "lunch_break": ["12:00", "13:30"],
        "tz": "Asia/Shanghai", "extra_holidays": ["2026-05-06"], "extra_workdays": []}`.
        """
        config = config or {}
        kwargs: dict[str, Any] = {}
        if "working_hours" in config:
            s, e = config["working_hours"]
            kwargs["working_hours"] = (_parse_time(s), _parse_time(e))
        if config.get("lunch_break"):
            s, e = config["lunch_break"]
            kwargs["lunch_break"] = (_parse_time(s), _parse_time(e))
        if "tz" in config:
            kwargs["tz"] = config["tz"]
        kwargs["extra_holidays"] = frozenset(map(_parse_date, config.get("extra_holidays", ())))
        kwargs["extra_workdays"] = frozenset(map(_parse_date, config.get("extra_workdays", ())))
        return cls(**kwargs)

    def to_config(self) -> dict[str, Any]:
        return {
            "working_hours": [t.isoformat("minutes") for t in self.working_hours],
            "lunch_break": (
                [t.isoformat("minutes") for t in self.lunch_break] if self.lunch_break else None
            ),
            "tz": self.tz,
            "extra_holidays": sorted(d.isoformat() for d in self.extra_holidays),
            "extra_workdays": sorted(d.isoformat() for d in self.extra_workdays),
        }

    def with_overrides(
        self,
        extra_holidays: Iterable[date] = (),
        extra_workdays: Iterable[date] = (),
    ) -> BusinessCalendar:
        """A copy with more region dates; a date given here replaces its opposite."""
        hol, work = set(extra_holidays), set(extra_workdays)
        return BusinessCalendar(
            working_hours=self.working_hours,
            lunch_break=self.lunch_break,
            tz=self.tz,
            extra_holidays=frozenset((self.extra_holidays - work) | hol),
            extra_workdays=frozenset((self.extra_workdays - hol) | work),
        )

    # -- days ----------------------------------------------------------------------------

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.tz)

    def year_of(self, at: datetime) -> int:
        """The year a case number carries: the region's, so a call at 00:30 on New Year's
        morning in Shenzhen is numbered in the new year (UTC is still in the old one)."""
        return at.astimezone(self.zone).year

    def is_workday(self, day: date) -> bool:
        """Region overrides, then the official table, then Monday-Friday (see module doc)."""
        if day in self.extra_workdays:
            return True
        if day in self.extra_holidays:
            return False
        first, last = holiday_table_years()
        if first <= day.year <= last:
            return _official_workday(day)
        return day.weekday() < 5

    def working_day_length(self) -> timedelta:
        """Working time in one full working day (what "1 working day" of an SLA means)."""
        return sum((e - s for s, e in self._intervals(date(2000, 1, 3), force=True)), timedelta())

    def _intervals(self, day: date, *, force: bool = False) -> list[tuple[datetime, datetime]]:
        if not force and not self.is_workday(day):
            return []
        zone = self.zone
        start, end = self.working_hours
        cuts = [start, *(self.lunch_break or ()), end]
        pairs = list(zip(cuts[::2], cuts[1::2], strict=True))
        return [
            (datetime.combine(day, s, tzinfo=zone), datetime.combine(day, e, tzinfo=zone))
            for s, e in pairs
        ]

    # -- time ----------------------------------------------------------------------------

    def is_working_time(self, dt: datetime) -> bool:
        _require_aware(dt)
        local = dt.astimezone(self.zone)
        return any(s <= local < e for s, e in self._intervals(local.date()))

    def add_working_time(self, start: datetime, duration: timedelta) -> datetime:
        """The moment `duration` of working time after `start`.

        Starting outside working hours counts from the next working minute; a result that
        lands exactly at the end of a working period stays there (18:00, not 09:00 next day).
        A zero duration returns `start` unchanged.
        """
        _require_aware(start, "start")
        if duration < timedelta(0):
            raise ValueError("duration must not be negative")
        if duration == timedelta(0):
            return start.astimezone(self.zone)
        remaining = duration
        cursor = start.astimezone(self.zone)
        day = cursor.date()
        for _ in range(_MAX_DAYS_SEARCHED):
            for s, e in self._intervals(day):
                if cursor >= e:
                    continue
                begin = max(s, cursor)
                available = e - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
                cursor = e
            day += timedelta(days=1)
        raise RuntimeError(f"no working time within {_MAX_DAYS_SEARCHED} days of {start}")

    def working_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Working time in [a, b); zero when b is not after a."""
        _require_aware(a, "a")
        _require_aware(b, "b")
        if b <= a:
            return timedelta(0)
        la, lb = a.astimezone(self.zone), b.astimezone(self.zone)
        total = timedelta(0)
        day = la.date()
        while day <= lb.date():
            for s, e in self._intervals(day):
                lo, hi = max(s, la), min(e, lb)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total
