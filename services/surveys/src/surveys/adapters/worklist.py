"""The agents' visit worklist, readable by `_id` only: open visits by region and due day.

FerretDB 1.x with SQLite pushes down no filter but `{_id: x}`, so a query on `due_at`
would read every survey ever stored. Instead each region has a document listing its
non-empty due days (`days:<region>`), and each `<region>|<day>` a document holding the
rows of the open visits due that day. A page reads the day list, then day after day
(oldest first) until it is full: its cost follows the open visits of a region, never the
number of surveys stored. Days are in China Standard Time, the customer centres' day.

Rows follow the survey's revision, as the cases queue does: two writes of one survey can
reach the index in either order, so a bucket keeps per survey only the newest thing it
heard (a row with its revision, or the revision it was removed at).

A writer that dies between the survey's write and the row's leaves the worklist wrong (a
visit missing, or a stale row of an answered one). So each write of a listed survey first
leaves a note (`worklist_repairs`, `<survey>@<rev>`, with the day it was listed on), and
deletes it once the row is in place; `repair` finishes the writes whose note is older
than a while, as the cases queue's repair does.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any

from crm_runtime.revisions import REV, RevisionConflict, write_revision
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

WORKLIST = "worklist_index"
REPAIRS = "worklist_repairs"
CST = timezone(timedelta(hours=8))
ROW_FIELDS = ("survey_id", "kind", "region", "customer_id", "case_id", "work_order_id", "contract_id",
              "project", "building", "unit", "opens_at", "due_at", "expires_at")


def due_day(at: datetime) -> int:
    return at.astimezone(CST).date().toordinal()


def day_end(day: int) -> datetime:
    d = date.fromordinal(day + 1)
    return datetime(d.year, d.month, d.day, tzinfo=CST)


async def _update(collection: AsyncCollection[dict[str, Any]], doc_id: str,
                  change: Callable[[dict[str, Any] | None], dict[str, Any] | None]) -> None:
    """Read-modify-write of one small document, serialised by a revision claim."""
    for _ in range(50):
        doc = await collection.find_one({"_id": doc_id})
        new = change(doc)
        if new is None:
            return
        try:
            if doc is None:
                await collection.insert_one({"_id": doc_id, **new, REV: 0})
            else:
                await write_revision(collection, doc_id, int(doc.get(REV, 0)), {"$set": new})
            return
        except (DuplicateKeyError, RevisionConflict):
            continue
    raise RevisionConflict(doc_id)


def placed(bucket: dict[str, Any] | None, survey_id: str, row: dict[str, Any]) -> dict[str, Any] | None:
    rows, gone = (bucket or {}).get("rows", {}), (bucket or {}).get("gone", {})
    known = max(int(rows[survey_id]["rev"]) if survey_id in rows else -1, int(gone.get(survey_id, -1)))
    if known >= row["rev"]:
        return None
    return {"rows": {**rows, survey_id: row}, "gone": gone}


def removed(bucket: dict[str, Any] | None, survey_id: str, rev: int) -> dict[str, Any] | None:
    rows, gone = (bucket or {}).get("rows", {}), (bucket or {}).get("gone", {})
    if survey_id in rows and int(rows[survey_id]["rev"]) > rev:
        return None  # placed again by a newer write
    if survey_id not in rows and int(gone.get(survey_id, -1)) >= rev:
        return None
    return {"rows": {k: v for k, v in rows.items() if k != survey_id}, "gone": {**gone, survey_id: rev}}


class Worklist:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]):
        self.collection = db[WORKLIST]
        self.repairs = db[REPAIRS]

    async def note(self, survey_id: str, rev: int, previous: dict[str, Any] | None, at: datetime) -> str:
        """Before writing revision `rev` of a listed survey: what a repair needs to finish it."""
        note_id = f"{survey_id}@{rev}"
        previous_day = due_day(previous["due_at"]) if previous is not None else None
        try:
            await self.repairs.insert_one({"_id": note_id, "survey_id": survey_id, "rev": rev,
                                           "previous_day": previous_day, "at": at})
        except DuplicateKeyError:
            pass  # the same write again (a redelivery): one note
        return note_id

    async def done(self, note_id: str) -> None:
        await self.repairs.delete_one({"_id": note_id})

    async def notes(self, older_than: datetime) -> list[dict[str, Any]]:
        """Unfinished writes noted before `older_than` (a handful: a full read is cheap)."""
        return [n async for n in self.repairs.find({}) if n["at"] < older_than]

    async def place(self, survey: dict[str, Any], rev: int) -> None:
        """List an open visit in its region and due day (idempotent for one revision)."""
        day = due_day(survey["due_at"])
        row = {**{k: survey.get(k) for k in ROW_FIELDS}, "survey_id": survey["_id"], "rev": rev}
        await _update(self.collection, f"{survey['region']}|{day}", lambda d: placed(d, survey["_id"], row))
        await _update(self.collection, f"days:{survey['region']}",
                      lambda d: None if d and day in d["days"] else {"days": sorted({*(d or {}).get("days", []), day})})

    async def remove(self, survey: dict[str, Any], rev: int, *, day: int | None = None) -> None:
        """Take a visit off (answered, excluded, expired, cancelled, or moved from `day`)."""
        day = day if day is not None else due_day(survey["due_at"])
        await _update(self.collection, f"{survey['region']}|{day}", lambda d: removed(d, survey["_id"], rev))

    async def page(self, region: str, now: datetime, *, limit: int, due_by: datetime | None = None,
                   ) -> list[dict[str, Any]]:
        """Open visits of a region (opened by `now`), overdue first then by due time; with
        `due_by`, only those due by then."""
        days_doc = await self.collection.find_one({"_id": f"days:{region}"})
        days = sorted((days_doc or {}).get("days", []))
        last_day = due_day(due_by) if due_by else None
        rows: list[dict[str, Any]] = []
        empty: list[int] = []
        for day in days:
            if last_day is not None and day > last_day:
                break
            if len(rows) >= limit:
                break
            bucket = await self.collection.find_one({"_id": f"{region}|{day}"})
            day_rows = list((bucket or {}).get("rows", {}).values())
            if not day_rows and day < due_day(now) - 1:  # not today's nor yesterday's: none is added
                empty.append(day)
            rows += [r for r in day_rows if r["opens_at"] <= now and (due_by is None or r["due_at"] <= due_by)]
        if empty:  # a past day with nothing left: drop it from the list
            await _update(self.collection, f"days:{region}",
                          lambda d: {"days": [x for x in (d or {}).get("days", []) if x not in empty]})
        rows.sort(key=lambda r: (r["due_at"], r["survey_id"]))
        return rows[:limit]

