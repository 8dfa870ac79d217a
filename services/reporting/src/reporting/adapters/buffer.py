"""A generation read through and written behind an in-memory cache, for the rebuild.

The rebuild is the only writer of its fresh generation (its own consumer group), so what
it has not written does not exist: a miss needs no read. Batches are applied in memory
and flushed every few tens of thousands of events as inserts (new documents) and
replaces; Kafka offsets are committed only after a flush. A crash before a flush replays
those events, which the stored offsets make harmless.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from reporting.adapters.store import Doc, Generation

INSERT_CHUNK = 1000


class BufferedGeneration:
    def __init__(self, gen: Generation, *, fresh: bool, max_cached: int = 300_000):
        self.gen = gen
        self.name = gen.name
        self.fresh = fresh  # the generation started empty and we are its only writer
        self.max_cached = max_cached
        self.entities, self.shards, self.ids = "entities", "shards", "ids"
        self._cache: dict[str, dict[str, Doc]] = {k: {} for k in (self.entities, self.shards, self.ids)}
        self._dirty: dict[str, set[str]] = {k: set() for k in self._cache}
        self._stored: dict[str, set[str]] = {k: set() for k in self._cache}

    def _collection(self, key: str) -> Any:
        return getattr(self.gen, key)

    async def read(self, key: str, ids: Iterable[str]) -> dict[str, Doc]:
        cache = self._cache[key]
        found = {i: cache[i] for i in ids if i in cache}
        missing = [i for i in ids if i not in cache and (not self.fresh or i in self._stored[key])]
        if missing:
            loaded = await self.gen.read(self._collection(key), missing)
            cache.update(loaded)
            found.update(loaded)
        return found

    async def write(self, key: str, docs: list[Doc], *, new: set[str] | None = None) -> None:
        for doc in docs:
            self._cache[key][doc["_id"]] = doc
            self._dirty[key].add(doc["_id"])

    async def note_partitions(self, pairs: Iterable[tuple[str, int]]) -> None:
        await self.gen.note_partitions(pairs)

    async def source_partitions(self, max_age_s: float = 2.0) -> dict[str, list[int]]:
        return await self.gen.source_partitions(max_age_s)

    def forget(self) -> None:
        """Another writer may now own some partitions: read everything from the store again."""
        self.fresh = False
        for cache in self._cache.values():
            cache.clear()

    @property
    def dirty(self) -> int:
        return sum(len(d) for d in self._dirty.values())

    async def flush(self) -> None:
        """Store every changed document: shards and ids first, then entities."""
        for keys in ((self.shards, self.ids), (self.entities,)):
            await asyncio.gather(*(self._flush(k) for k in keys))
        if sum(len(c) for c in self._cache.values()) > self.max_cached:
            for cache in self._cache.values():
                cache.clear()  # stored: read again when needed

    async def _flush(self, key: str) -> None:
        cache, stored, collection = self._cache[key], self._stored[key], self._collection(key)
        docs = [cache[i] for i in self._dirty[key]]
        fresh = [d for d in docs if d["_id"] not in stored] if self.fresh else []
        known = [d for d in docs if d["_id"] in stored] if self.fresh else docs
        for i in range(0, len(fresh), INSERT_CHUNK):
            async with self.gen.write_slots:
                await collection.insert_many(fresh[i:i + INSERT_CHUNK], ordered=False)
        await self.gen.write(collection, known)  # replaces, a few statements a command
        stored.update(d["_id"] for d in docs)
        self._dirty[key].clear()
