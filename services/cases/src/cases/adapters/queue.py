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
ROW_FIELDS = ("case_id", "case_number", "region", "status", "severity", "category", "department", "assignee",
              "customer_id", "project", "building", "unit", "channel", "subject", "opened_at", "sla_due_at",
              "waiting_for_customer", "collective_incident_id")


def due_hour(due_at: datetime) -> int:
    return int(due_at.timestamp() // 3600)


def queue_location(case_doc: dict[str, Any]) -> dict[str, Any] | None:
    """Where an open case is listed: its region and due hour; closed cases are not."""
    if not case_doc.get("is_open"):
        return None
    return {"region": case_doc["region"], "hour": due_hour(case_doc["sla_due_at"])}


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

    async def place(self, case_doc: dict[str, Any], previous: tuple[str, int] | None, rev: int,
                    ) -> tuple[str, int] | None:
        """Put the case's row (as of revision `rev`) in its bucket, or take it out once
        closed, and out of the bucket it was in before; returns where it is."""
        case_id = case_doc["_id"]
        location = queue_location(case_doc)
        here = (location["region"], location["hour"]) if location else None
        if previous is not None and previous != here:
            await _update(self.collection, f"{previous[0]}|{previous[1]}", lambda d: removed(d, case_id, rev))
        if here is not None:
            row = {**queue_row(case_doc), "rev": rev}
            await _update(self.collection, f"{here[0]}|{here[1]}", lambda d: placed(d, case_id, row))
            await _update(self.collection, f"hours:{here[0]}",
                          lambda d: None if d and here[1] in d["hours"]
                          else {"hours": sorted({*(d["hours"] if d else []), here[1]})})
        return here

    async def note_repair(self, case_id: str, rev: int, previous: tuple[str, int] | None) -> str:
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
                previous = tuple(note["previous"]) if note.get("previous") else None
                if previous is not None:
                    here = queue_location(case_doc)
                    if here is None or (here["region"], here["hour"]) != previous:
                        case_id, note_rev = case_doc["_id"], int(note["rev"])
                        await _update(self.collection, f"{previous[0]}|{previous[1]}",
                                      partial(removed, case_id=case_id, rev=note_rev))
                await self.place(case_doc, None, rev)
            await self.done(note["_id"])
            repaired += 1
        return repaired

    async def forget_hour(self, region: str, hour: int) -> None:
        """Take a past hour whose bucket is empty (its cases closed or moved) off the
        region's hour list. A row placed there meanwhile puts it back: `place` writes the
        bucket before it checks the list, so either it finds the hour gone and adds it, or
        the bucket read here after the removal finds its row."""
        await _update(self.collection, f"hours:{region}",
                      lambda d: {"hours": [h for h in d["hours"] if h != hour]} if d and hour in d["hours"] else None)
        if await self.rows(region, hour):
            await _update(self.collection, f"hours:{region}",
                          lambda d: None if d and hour in d["hours"] else {"hours": sorted({*(d["hours"] if d else []),
                                                                                            hour})})

    async def hours(self, region: str) -> list[int]:
        doc = await self.collection.find_one({"_id": f"hours:{region}"})
        return list(doc["hours"]) if doc else []

    async def rows(self, region: str, hour: int) -> list[dict[str, Any]]:
        # Not `gone`: the revisions of rows that left matter to writers only.
        doc = await self.collection.find_one({"_id": f"{region}|{hour}"}, {"rows": 1})
        return list((doc or {}).get("rows", {}).values())

    async def page(self, wanted: dict[str, Any], *, regions: list[str], due_before: datetime | None,
                   after: tuple[datetime, str] | None, limit: int) -> list[dict[str, Any]]:
        """Open rows of `regions` matching `wanted` (field -> value), due first, after the
        cursor `(due, case_id)`, at most `limit`."""
        hour_lists = await asyncio.gather(*(self.hours(r) for r in regions))
        first_hour = due_hour(after[0]) if after is not None else None
        last_hour = due_hour(due_before) if due_before else None
        # One group per hour, every region's bucket of that hour in it: rows are sorted
        # across regions within an hour, and every row of an earlier hour is due earlier.
        by_hour: dict[int, list[str]] = {}
        for region, hours in zip(regions, hour_lists, strict=True):
            for hour in hours:
                if (first_hour is None or hour >= first_hour) and (last_hour is None or hour <= last_hour):
                    by_hour.setdefault(hour, []).append(region)
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
            found = await asyncio.gather(*(self.rows(r, hour) for hour, regs in groups for r in regs))
            read += taken
            past = due_hour(datetime.now(UTC))
            empty = [(r, hour) for (hour, r), rows_of in zip(
                ((h, r) for h, regs in groups for r in regs), found, strict=True) if not rows_of and hour < past]
            if empty:  # every later page would read them again
                await asyncio.gather(*(self.forget_hour(r, hour) for r, hour in empty))
            at = 0
            for _hour, regs in groups:
                bucket = [row for rows_of in found[at:at + len(regs)] for row in rows_of
                          if matches(row, wanted, due_before, after)]
                at += len(regs)
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
