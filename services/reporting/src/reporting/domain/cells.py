"""Where a counter lives: the cell (region, month or year or "gauge", project), the slice
(a department, or every department) and the counter's name.

Months are counted on China Standard Time (UTC+8, every region the platform serves), so a
complaint received at 07:00 on 1 April Beijing time belongs to April although it is still
March in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache

CHINA = timezone(timedelta(hours=8), "CST")
ALL = "_all"  # every project, or every department
SEP = "|"

Key = tuple[str, str, str]  # (cell, slice, counter)


def month_of(at: datetime) -> str:
    """The reporting month (YYYY-MM, China time) an instant belongs to."""
    local = at.astimezone(CHINA)
    return f"{local.year:04d}-{local.month:02d}"


def day_of(at: datetime) -> str:
    local = at.astimezone(CHINA)
    return f"{local.year:04d}-{local.month:02d}-{local.day:02d}"


def parse_time(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@lru_cache(maxsize=65536)  # the same few project, department and cause names, again and again
def clean(name: str | None, default: str = "unknown") -> str:
    """A name usable as a stored field name and inside a key: no '.', no leading '$', no '|'."""
    if not name:
        return default
    text = name.strip().replace(".", "_").replace("|", "/").replace("\x00", "")
    text = text.lstrip("$") or default
    return text[:80]


def month_cell(region: str, month: str, project: str | None = ALL) -> str:
    return SEP.join(("m", region, month, clean(project, ALL)))


def year_cell(region: str, year: str, project: str | None = ALL) -> str:
    return SEP.join(("y", region, year, clean(project, ALL)))


def gauge_cell(region: str, project: str | None = ALL) -> str:
    """Counters that are not per month: households moved in, repairs by day since delivery."""
    return SEP.join(("g", region, clean(project, ALL)))


def shard_id(cell: str, topic: str, partition: int) -> str:
    """A cell has one document per source partition: each has a single writer."""
    return f"{cell}{SEP}{topic}{SEP}{partition}"


def check_month(value: str) -> str:
    """YYYY-MM, or ValueError."""
    try:
        parsed = datetime.strptime(value, "%Y-%m")
    except ValueError:
        raise ValueError("month must be YYYY-MM, e.g. 2026-03") from None
    return parsed.strftime("%Y-%m")


def previous_month(month: str) -> str:
    year, mon = map(int, month.split("-"))
    return f"{year - 1}-12" if mon == 1 else f"{year}-{mon - 1:02d}"


class Profile:
    """The counters one entity (a case, a contact, a survey ...) contributes, built up
    by its profile function. The same counter goes to the project's cell and the
    all-projects cell, to its department's slice and the all-departments slice."""

    def __init__(self) -> None:
        self.items: dict[Key, int] = {}

    def add_cell(self, cell: str, slice_: str, counter: str, value: int = 1) -> None:
        if value:
            key = (cell, slice_, counter)
            self.items[key] = self.items.get(key, 0) + value

    def add(self, cells: tuple[str, ...], counter: str, value: int = 1,
            department: str | None = None) -> None:
        if not value:
            return
        items = self.items  # add_cell inlined: a rebuild calls this tens of millions of times
        slice_ = clean(department) if department else None
        for cell in cells:
            key = (cell, ALL, counter)
            items[key] = items.get(key, 0) + value
            if slice_:
                key = (cell, slice_, counter)
                items[key] = items.get(key, 0) + value


def month_cells(region: str, at: datetime, project: str | None) -> tuple[str, ...]:
    return _month_cells(region, month_of(at), project)


@lru_cache(maxsize=65536)
def _month_cells(region: str, month: str, project: str | None) -> tuple[str, ...]:
    cells = [month_cell(region, month)]
    if project:
        cells.append(month_cell(region, month, project))
    return tuple(cells)


def year_cells(region: str, at: datetime, project: str | None) -> tuple[str, ...]:
    year = at.astimezone(CHINA).strftime("%Y")
    cells = [year_cell(region, year)]
    if project:
        cells.append(year_cell(region, year, project))
    return tuple(cells)
