"""Append-only lists readable by `_id` alone: the index shape for FerretDB 1.x.

FerretDB with SQLite answers quickly only `{_id: x}`; any other filter reads the whole
collection. To find "everything in bucket B" (the timers due this minute, the cases due
this hour), each member is a document `<B>#<n>`, n = 0, 1, 2, ..., and a counter
`count:<B>` says how far to read. The counter's `$inc` is only a hint (FerretDB updates
are not atomic); the unique insert of `<B>#<n>` decides, so two writers never share a
slot, and a reader probes a little past the counter for a writer that is just behind.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError


class SlotIndex:
    def __init__(self, collection: AsyncCollection[dict[str, Any]]):
        self.collection = collection

    async def add(self, bucket: str, value: Any) -> bool:
        """Append `value` to `bucket`; True if it was the bucket's first member."""
        n = await self._next(bucket)
        first = n == 0
        while True:
            try:
                await self.collection.insert_one({"_id": f"{bucket}#{n}", "v": value})
                return first
            except DuplicateKeyError:
                n += 1
                first = False
                await self.collection.update_one({"_id": f"count:{bucket}"}, {"$max": {"n": n + 1}})

    async def _next(self, bucket: str) -> int:
        """The counter's hint for the next free slot. Two writers upserting a counter that
        does not exist yet may both insert it: the loser gets a duplicate key, and then the
        counter exists, so its `$inc` is simply tried again."""
        for _ in range(3):
            try:
                counter = await self.collection.find_one_and_update(
                    {"_id": f"count:{bucket}"}, {"$inc": {"n": 1}}, upsert=True,
                    return_document=ReturnDocument.AFTER)
            except DuplicateKeyError:
                continue
            return int(counter["n"]) - 1 if counter else 0  # an upsert always returns the document
        return 0  # only a hint: the unique insert of each slot decides, probing upwards

    async def members(self, bucket: str) -> list[Any]:
        counter = await self.collection.find_one({"_id": f"count:{bucket}"})
        count = int(counter["n"]) if counter else 0
        found = await asyncio.gather(*(self.collection.find_one({"_id": f"{bucket}#{n}"}) for n in range(count + 2)))
        return [doc["v"] for doc in found if doc is not None]
