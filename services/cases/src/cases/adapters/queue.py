"""The staff queue, readable by `_id` only: open cases by region and due hour.

Each case is entered in the bucket `<region>|<hour of its next SLA due time>` when it
gets there (cases without a running clock go to a last bucket). A region's document
lists its non-empty hours; the queue walks them in order, reads each bucket's members by
`_id` and keeps the cases that still belong there and match the filters. The cost of a
page follows the size of the first buckets, not the number of cases ever opened.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crm_runtime.revisions import REV, RevisionConflict, write_revision
from crm_runtime.slots import SlotIndex
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

QUEUE = "queue_index"


def due_hour(due_at: datetime) -> int:
    return int(due_at.timestamp() // 3600)


class QueueIndex:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]):
        self.collection = db[QUEUE]
        self.slots = SlotIndex(self.collection)

    async def enter(self, region: str, case_id: str, due_at: datetime) -> None:
        """Make sure the case is listed under its current due hour (idempotent)."""
        hour = due_hour(due_at)
        try:
            await self.collection.insert_one({"_id": f"entered:{case_id}:{hour}"})
        except DuplicateKeyError:
            return
        if await self.slots.add(f"{region}|{hour}", case_id):
            await self._add_hour(region, hour)

    async def _add_hour(self, region: str, hour: int) -> None:
        for _ in range(50):
            doc = await self.collection.find_one({"_id": f"hours:{region}"})
            try:
                if doc is None:
                    await self.collection.insert_one({"_id": f"hours:{region}", "hours": [hour], REV: 0})
                elif hour not in doc["hours"]:
                    await write_revision(self.collection, f"hours:{region}", int(doc.get(REV, 0)),
                                         {"$set": {"hours": sorted([*doc["hours"], hour])}})
                return
            except (DuplicateKeyError, RevisionConflict):
                continue

    async def hours(self, region: str) -> list[int]:
        doc = await self.collection.find_one({"_id": f"hours:{region}"})
        return list(doc["hours"]) if doc else []

    async def members(self, region: str, hour: int) -> list[str]:
        return [str(v) for v in await self.slots.members(f"{region}|{hour}")]


def hour_start(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * 3600, UTC)
