"""The staff queue, readable by `_id` only: open cases by region and due hour.

FerretDB 1.x with SQLite pushes down no filter but `{_id: x}`, and every lookup costs a
few milliseconds, so a page must take few reads whatever the number of cases. Each
region has a document listing its non-empty due hours, and each `<region>|<hour>` a
document holding the queue rows (status, severity, category, department, assignee, due
time, ...) of the open cases due in that hour. A page reads the hour list and then
bucket after bucket until it is full; a case's save moves its row between buckets.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from crm_runtime.revisions import REV, RevisionConflict, write_revision
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

QUEUE = "queue_index"
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
                  change: Callable[[dict[str, Any] | None], Awaitable[dict[str, Any] | None] | dict[str, Any] | None],
                  ) -> None:
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


class QueueIndex:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]):
        self.collection = db[QUEUE]

    async def place(self, case_doc: dict[str, Any], previous: tuple[str, int] | None) -> tuple[str, int] | None:
        """Put the case's row in its bucket (or take it out once closed); returns where it is."""
        case_id = case_doc["_id"]
        location = queue_location(case_doc)
        here = (location["region"], location["hour"]) if location else None
        if previous is not None and previous != here:
            await _update(self.collection, f"{previous[0]}|{previous[1]}",
                          lambda d: {"rows": {k: v for k, v in d["rows"].items() if k != case_id}}
                          if d and case_id in d["rows"] else None)
        if here is not None:
            row = queue_row(case_doc)
            await _update(self.collection, f"{here[0]}|{here[1]}",
                          lambda d: {"rows": {**(d["rows"] if d else {}), case_id: row}})
            await _update(self.collection, f"hours:{here[0]}",
                          lambda d: None if d and here[1] in d["hours"]
                          else {"hours": sorted({*(d["hours"] if d else []), here[1]})})
        return here

    async def hours(self, region: str) -> list[int]:
        doc = await self.collection.find_one({"_id": f"hours:{region}"})
        return list(doc["hours"]) if doc else []

    async def rows(self, region: str, hour: int) -> list[dict[str, Any]]:
        doc = await self.collection.find_one({"_id": f"{region}|{hour}"})
        return list((doc or {}).get("rows", {}).values())


def hour_start(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * 3600, UTC)
