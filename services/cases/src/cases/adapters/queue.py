"""The staff queue, readable by `_id` only: open cases by region and due hour.

FerretDB 1.x with SQLite pushes down no filter but `{_id: x}`, and every lookup costs a
few milliseconds, so a page must take few reads whatever the number of cases. Each
region has a document listing its non-empty due hours, and each `<region>|<hour>` a
document holding the queue rows (status, severity, category, department, assignee, due
time, ...) of the open cases due in that hour. A page reads the hour list and then
bucket after bucket until it is full; a case's save moves its row between buckets. The
buckets of a page are read in concurrent waves sized from the rows matched so far (a
narrow filter matches few rows a bucket), not one after another. A past hour found empty
is taken off the list, so closed cases do not leave reads behind for every later page.

Rows follow the case's revision. Two saves of one case can reach the queue in either
order, so each bucket keeps, per case, only the newest thing it heard: a row carries the
revision it shows, and a removal leaves the revision it happened at (`gone`), so an older
row arriving late is refused. A save that dies between writing the case and moving its
row leaves a repair note (`queue_repairs`), and `repair` re-places the row from the case.

An hour a backlog fills (thousands of cases opened at once, all due in the same hour) is
held in parts: `<region>|<hour>` first, then `<region>|<hour>|1`, ... A batch adds rows to
the hour's last part until it holds about PART_ROWS and opens the next; the case records
its part (`queue_at.part`, absent for the first) and keeps it while it stays in that hour,
and the region's hour list says how many parts an hour has. Why: FerretDB rewrites a whole
document on every update, so one bucket of every case of the hour made each batch rewrite
all the rows before it. A page reads every part of an hour (the same rows as one bucket).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from crm_runtime.rmw import update_document
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

QUEUE = "queue_index"
REPAIRS = "queue_repairs"
FIRST_WAVE = 6  # buckets read at once at first; ~12 open rows a bucket fill a page of 50 in 5
MAX_WAVE = 32  # at most this many reads in flight for one page
# Rows a part holds before a batch opens the next: an ordinary hour (tens of rows) never
# needs a second part; a backlog's hour of thousands is a few parts (see the docstring).
PART_ROWS = 500
ROW_FIELDS = ("case_id", "case_number", "region", "status", "severity", "category", "department", "assignee",
              "customer_id", "project", "building", "unit", "channel", "subject", "opened_at", "sla_due_at",
              "waiting_for_customer", "collective_incident_id")


def due_hour(due_at: datetime) -> int:
    return int(due_at.timestamp() // 3600)


Location = tuple[str, int, int]  # region, due hour, part


def queue_location(case_doc: dict[str, Any]) -> dict[str, Any] | None:
    """Where an open case is listed: its region and due hour (its part is set by whoever
    places it in another than the first); closed cases are not."""
    if not case_doc.get("is_open"):
        return None
    return {"region": case_doc["region"], "hour": due_hour(case_doc["sla_due_at"])}


def location_of(queue_at: Any) -> Location | None:
    """A stored location (a case's `queue_at`, or a repair note's list) as a tuple."""
    if not queue_at:
        return None
    if isinstance(queue_at, dict):
        return str(queue_at["region"]), int(queue_at["hour"]), int(queue_at.get("part", 0))
    region, hour, *part = queue_at
    return str(region), int(hour), int(part[0]) if part else 0


def kept_in_part(queue_at: dict[str, Any] | None, before: Any) -> dict[str, Any] | None:
    """The case's new location, in the part it was in if it stays in the same hour."""
    was = location_of(before)
    if queue_at is None or was is None or (was[0], was[1]) != (queue_at["region"], queue_at["hour"]):
        return queue_at
    return {**queue_at, "part": was[2]} if was[2] else queue_at


def bucket_id(region: str, hour: int, part: int = 0) -> str:
    return f"{region}|{hour}" if part == 0 else f"{region}|{hour}|{part}"


def parts_of(hours_doc: dict[str, Any] | None, hour: int) -> int:
    return int((hours_doc or {}).get("parts", {}).get(str(hour), 1))


def listed(doc: dict[str, Any] | None, parts: dict[int, int]) -> dict[str, Any] | None:
    """The region's hour list with these hours, each with at least these parts, or None if
    it has them."""
    hours = set((doc or {}).get("hours", []))
    counts = dict((doc or {}).get("parts", {}))
    more = {str(h): n for h, n in parts.items() if n > 1 and n > int(counts.get(str(h), 1))}
    if doc is not None and set(parts) <= hours and not more:
        return None
    return {"hours": sorted(hours | set(parts)), "parts": {**counts, **more}}


def queue_row(case_doc: dict[str, Any]) -> dict[str, Any]:
    return {k: case_doc.get(k) for k in ROW_FIELDS}


async def _update(collection: AsyncCollection[dict[str, Any]], doc_id: str,
                  change: Callable[[dict[str, Any] | None], dict[str, Any] | None]) -> None:
    """Read-modify-write of one small document, serialised by a revision claim."""
    await update_document(collection, doc_id, change, attempts=50)


def placed(bucket: dict[str, Any] | None, case_id: str, row: dict[str, Any]) -> dict[str, Any] | None:
    """The bucket with `row` in it, or None if it already knows something newer of the case."""
    rows, gone = (bucket or {}).get("rows", {}), (bucket or {}).get("gone", {})
    known = max(int(rows[case_id].get("rev", -1)) if case_id in rows else -1, int(gone.get(case_id, -1)))
    if known >= row["rev"]:
        return None
    return {"rows": {**rows, case_id: row}, "gone": gone}


def removed(bucket: dict[str, Any] | None, case_id: str, rev: int) -> dict[str, Any] | None:
    """The bucket without the case as of `rev` (remembered, so an older row stays out), or
    None if nothing changes."""
    rows, gone = (bucket or {}).get("rows", {}), (bucket or {}).get("gone", {})
    if case_id in rows and int(rows[case_id].get("rev", -1)) > rev:
        return None  # placed again by a newer save
    if case_id not in rows and int(gone.get(case_id, -1)) >= rev:
        return None
    return {"rows": {k: v for k, v in rows.items() if k != case_id}, "gone": {**gone, case_id: rev}}


class QueueIndex:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]):
        self.collection = db[QUEUE]
        self.repairs = db[REPAIRS]

    async def place(self, case_doc: dict[str, Any], previous: Any, rev: int) -> Location | None:
        """Put the case's row (as of revision `rev`) in its bucket, or take it out once
        closed, and out of the bucket it was in before; returns where it is. The case's
        `queue_at` says where (computed from the case if it has none)."""
        case_id = case_doc["_id"]
        here = location_of(case_doc["queue_at"] if "queue_at" in case_doc else queue_location(case_doc))
        was = location_of(previous)
        if was is not None and was != here:
            await _update(self.collection, bucket_id(*was), lambda d: removed(d, case_id, rev))
        if here is not None:
            row = {**queue_row(case_doc), "rev": rev}
            await _update(self.collection, bucket_id(*here), lambda d: placed(d, case_id, row))
            await _update(self.collection, f"hours:{here[0]}", lambda d: listed(d, {here[1]: here[2] + 1}))
        return here

    async def note_repair(self, case_id: str, rev: int, previous: Location | None) -> str:
        """Before a case write: if the writer dies before moving the row, `repair` will."""
        note_id = f"{case_id}@{rev}"
        await self.repairs.update_one(
            {"_id": note_id},
            {"$set": {"case_id": case_id, "rev": rev, "previous": list(previous) if previous else None,
                      "at": datetime.now(UTC)}}, upsert=True)
        return note_id

    async def done(self, note_id: str) -> None:
        await self.repairs.delete_one({"_id": note_id})

    async def repair(self, load: Callable[[str], Awaitable[tuple[dict[str, Any], int] | None]],
                     older_than_s: float = 30.0) -> int:
        """Re-place the rows of writes that left a note and did not finish (their writer
        died, or is slower than `older_than_s`); safe to run on every replica at once."""
        cutoff = datetime.now(UTC).timestamp() - older_than_s
        notes = [n async for n in self.repairs.find({})]  # a handful: only unfinished writes
        repaired = 0
        for note in notes:
            if note["at"].timestamp() > cutoff:
                continue
            found = await load(note["case_id"])
            if found is not None:
                case_doc, rev = found
                previous = location_of(note.get("previous"))
                if previous is not None:
                    here = location_of(case_doc.get("queue_at"))
                    if here != previous:
                        case_id, note_rev = case_doc["_id"], int(note["rev"])
                        await _update(self.collection, bucket_id(*previous),
                                      partial(removed, case_id=case_id, rev=note_rev))
                await self.place(case_doc, None, rev)
            await self.done(note["_id"])
            repaired += 1
        return repaired

    async def forget_hour(self, region: str, hour: int) -> None:
        """Take a past hour whose parts are empty (its cases closed or moved) off the
        region's hour list. A row placed there meanwhile puts it back: writers write the
        part before they check the list, so either they find the hour gone and add it, or
        the parts read here after the removal find their rows."""
        had: list[int] = []

        def forget(d: dict[str, Any] | None) -> dict[str, Any] | None:
            if not d or hour not in d["hours"]:
                return None
            had[:] = [parts_of(d, hour)]
            return {"hours": [h for h in d["hours"] if h != hour],
                    "parts": {h: n for h, n in d.get("parts", {}).items() if h != str(hour)}}

        await _update(self.collection, f"hours:{region}", forget)
        parts = max([*had, 1])
        found = await asyncio.gather(*(self.rows(region, hour, p) for p in range(parts)))
        if any(found):
            await _update(self.collection, f"hours:{region}", lambda d: listed(d, {hour: parts}))

    async def hours(self, region: str) -> list[int]:
        return (await self.layout(region))[0]

    async def layout(self, region: str) -> tuple[list[int], dict[int, int]]:
        """The region's listed hours, and how many parts each has."""
        doc = await self.collection.find_one({"_id": f"hours:{region}"})
        hours = list(doc["hours"]) if doc else []
        return hours, {h: parts_of(doc, h) for h in hours}

    async def rows(self, region: str, hour: int, part: int = 0) -> list[dict[str, Any]]:
        # Not `gone`: the revisions of rows that left matter to writers only.
        doc = await self.collection.find_one({"_id": bucket_id(region, hour, part)}, {"rows": 1})
        return list((doc or {}).get("rows", {}).values())

    async def page(self, wanted: dict[str, Any], *, regions: list[str], due_before: datetime | None,
                   after: tuple[datetime, str] | None, limit: int) -> list[dict[str, Any]]:
        """Open rows of `regions` matching `wanted` (field -> value), due first, after the
        cursor `(due, case_id)`, at most `limit`."""
        layouts = await asyncio.gather(*(self.layout(r) for r in regions))
        first_hour = due_hour(after[0]) if after is not None else None
        last_hour = due_hour(due_before) if due_before else None
        # One group per hour, every part of every region's bucket of that hour in it: rows
        # are sorted across regions within an hour, and every row of an earlier hour is due
        # earlier.
        by_hour: dict[int, list[tuple[str, int]]] = {}
        for region, (hours, part_counts) in zip(regions, layouts, strict=True):
            for hour in hours:
                if (first_hour is None or hour >= first_hour) and (last_hour is None or hour <= last_hour):
                    by_hour.setdefault(hour, []).extend((region, p) for p in range(part_counts[hour]))
        pending = [(hour, sorted(by_hour[hour])) for hour in sorted(by_hour)]
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()  # a case moving between buckets right now may be in two
        read = 0
        while pending and len(rows) < limit:
            wave = _wave_size(limit - len(rows), len(rows), read)
            groups, taken = [], 0
            while pending and taken < wave:
                groups.append(pending.pop(0))
                taken += len(groups[-1][1])
            found = await asyncio.gather(*(self.rows(r, hour, p) for hour, parts in groups for r, p in parts))
            read += taken
            past = due_hour(datetime.now(UTC))
            filled: dict[tuple[str, int], bool] = {}
            for (hour, (r, _p)), rows_of in zip(((h, rp) for h, parts in groups for rp in parts), found, strict=True):
                filled[(r, hour)] = filled.get((r, hour), False) or bool(rows_of)
            empty = [(r, hour) for (r, hour), any_rows in filled.items() if not any_rows and hour < past]
            if empty:  # every later page would read them again
                await asyncio.gather(*(self.forget_hour(r, hour) for r, hour in empty))
            at = 0
            for _hour, parts in groups:
                bucket = [row for rows_of in found[at:at + len(parts)] for row in rows_of
                          if matches(row, wanted, due_before, after)]
                at += len(parts)
                for row in sorted(bucket, key=lambda r: (r["sla_due_at"], r["case_id"])):
                    if row["case_id"] not in seen:
                        seen.add(row["case_id"])
                        rows.append(row)
                if len(rows) >= limit:
                    break
        return [{k: v for k, v in r.items() if k != "rev"} for r in rows[:limit]]


def matches(row: dict[str, Any], wanted: dict[str, Any], due_before: datetime | None,
            after: tuple[datetime, str] | None) -> bool:
    return (all(row.get(k) == v for k, v in wanted.items())
            and (due_before is None or row["sla_due_at"] <= due_before)
            and (after is None or (row["sla_due_at"], row["case_id"]) > after))


def _wave_size(missing: int, matched: int, read: int) -> int:
    """How many buckets to read next: enough, at the density seen so far, for the rows
    still missing (a wasted read costs the store more than a later wave)."""
    if read == 0:
        return FIRST_WAVE
    if matched == 0:
        return MAX_WAVE
    return max(1, min(MAX_WAVE, math.ceil(missing * read / matched)))
