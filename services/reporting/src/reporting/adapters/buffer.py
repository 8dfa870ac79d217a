"""A generation read through and written behind an in-memory cache, for the rebuild and
for a replica following a generation it did not start with.

The rebuild is the only writer of its fresh generation (its own consumer group), so what
it has not written does not exist: a miss needs no read, and its shards stay in memory
until the end. Batches are applied in memory; changed entities are stored in the background
every so often (and those not touched lately let go once written when too many are held),
and everything is stored before the switch.
Kafka offsets are committed only after a full flush. A crash before one replays those
events, which the stored offsets make harmless.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from crm_runtime.batching import insert_new
from pymongo import ReplaceOne

from reporting.adapters import rollups
from reporting.adapters.store import Doc, Generation, encode
from reporting.domain.apply import tidy
from reporting.domain.rollups import Parts, rollups_of

INSERT_CHUNK = 1000
KINDS = ("entities", "shards", "ids")


class BufferedGeneration:
    def __init__(self, gen: Generation, *, fresh: bool, max_entities: int = 250_000):
        self.gen = gen
        self.name = gen.name
        self.fresh = fresh  # the generation started empty and we are its only writer
        self.max_entities = max_entities
        self.entities, self.shards, self.ids = KINDS
        self.cache: dict[str, dict[str, Doc]] = {k: {} for k in KINDS}
        self.changed: dict[str, set[str]] = {k: set() for k in KINDS}
        self._stored: dict[str, set[str]] = {k: set() for k in KINDS}
        self._recent: set[str] = set()  # entities touched since the last flush
        self.marks: dict[tuple[str, int], int] = {}  # per source partition, how far its shards in memory are
        self._writing: asyncio.Task[None] | None = None  # entities being stored in the background
        self.rollups_written = 0

    def _collection(self, key: str) -> Any:
        return getattr(self.gen, key)

    async def read(self, key: str, ids: Iterable[str]) -> dict[str, Doc]:
        cache = self.cache[key]
        wanted = list(ids)
        found = {i: cache[i] for i in wanted if i in cache}
        missing = [i for i in wanted if i not in cache and (not self.fresh or i in self._stored[key])]
        if missing:
            loaded = await self.gen.read(self._collection(key), missing)
            cache.update(loaded)
            found.update(loaded)
        return found

    async def load_entities(self, ids: Iterable[str]) -> None:
        """Bring the stored entities among `ids` back into memory (a fresh generation's
        shards never leave it)."""
        wanted = list(ids)
        self._recent.update(wanted)
        await self.read(self.entities, wanted)

    async def write(self, key: str, docs: list[Doc], *, new: set[str] | None = None) -> None:
        for doc in docs:
            self.cache[key][doc["_id"]] = doc
            self.changed[key].add(doc["_id"])

    async def note_partitions(self, pairs: Iterable[tuple[str, int]]) -> None:
        await self.gen.note_partitions(pairs)

    async def source_partitions(self, max_age_s: float = 2.0) -> dict[str, list[int]]:
        return await self.gen.source_partitions(max_age_s)

    async def writes_rollups(self) -> bool:
        return await self.gen.writes_rollups()

    async def update_rollups(self, changes: dict[str, Parts]) -> None:
        """Roll-ups are shared with other writers: stored at once, under their revisions
        (before the entities, which wait for the flush)."""
        await self.gen.update_rollups(changes)

    def forget(self) -> None:
        """Another writer may now own some partitions: read everything from the store again."""
        self.fresh = False
        for cache in self.cache.values():
            cache.clear()
        self.marks.clear()
        self._recent.clear()

    @property
    def dirty(self) -> int:
        return sum(len(d) for d in self.changed.values())

    @property
    def crowded(self) -> bool:
        return len(self.cache[self.entities]) > self.max_entities

    async def flush(self, *, entities_only: bool = False) -> None:
        """Store changed documents: shards and ids first, then entities (a crash between
        the two recomputes contributions the shards then skip). `entities_only`: make room
        in memory; valid for a fresh generation only, whose shards nobody else reads until
        the switch (they are stored before it). Such a flush writes in the background while
        the replay folds on (the store's work and ours overlap); the next flush of any kind
        waits for it first, and only entities whose write has landed are let go."""
        await self.settle()
        if entities_only and self.fresh:
            taken = self._take(self.entities)
            self._let_go()
            self._writing = asyncio.create_task(self._store_taken(self.entities, taken))
            return
        whole = self.fresh and await self.gen.writes_rollups()
        await asyncio.gather(self._store_taken(self.shards, self._take(self.shards)),
                             self._store_taken(self.ids, self._take(self.ids)),
                             self._store_rollups() if whole else asyncio.sleep(0))
        await self._store_taken(self.entities, self._take(self.entities))
        self._let_go()
        if not self.fresh:  # shared with other writers after a hand-over: keep nothing
            for cache in self.cache.values():
                cache.clear()

    async def settle(self) -> None:
        """Wait for the write in the background, if any (its failure is raised here)."""
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing

    def _let_go(self) -> None:
        entities = self.cache[self.entities]
        if len(entities) > self.max_entities // 2:
            # a history is mostly in time order: entities not touched lately are done with
            # (those not written yet were touched since the last flush: they stay)
            for eid in [e for e in entities if e not in self._recent]:
                del entities[eid]
        self._recent.clear()

    def _take(self, key: str) -> tuple[list[Doc], list[Doc]]:
        """The changed documents of `key`, split into those never stored (inserted) and
        the others (replaced); from now on they count as stored."""
        cache, stored = self.cache[key], self._stored[key]
        docs = [cache[i] for i in self.changed[key] if i in cache]
        field_ = None if key == self.entities else "counters" if key == self.shards else "ids"
        fresh = [d for d in docs if d["_id"] not in stored] if self.fresh else []
        known = [d for d in docs if d["_id"] in stored] if self.fresh else docs
        if field_:  # copies: the fold goes on changing the cached ones
            fresh = [tidy(dict(d), field_) for d in fresh]
            known = [tidy(dict(d), field_) for d in known]
        stored.update(d["_id"] for d in docs)
        self.changed[key].clear()
        return fresh, known

    async def _store_taken(self, key: str, taken: tuple[list[Doc], list[Doc]]) -> None:
        """Store what `_take` took; if that fails, the documents count as changed again, so
        the next flush (a retry, or the stop before a commit) writes them instead of
        committing offsets past documents never stored. Marked stored already, they are then
        replaced (upserts), which also covers an insert that landed in part."""
        try:
            await self._store(key, *taken)
        except BaseException:
            self.changed[key].update(d["_id"] for part in taken for d in part)
            raise

    async def _store_rollups(self) -> None:
        """A fresh generation's roll-ups, from its shards (all held in memory), once before
        the switch; nobody else writes it yet."""
        docs = [rollups.encode(d, 0) for d in rollups_of(self.cache[self.shards].values()).values()]
        self.rollups_written = len(docs)
        collection = self.gen.rollups
        existed: set[str] = set()
        for i in range(0, len(docs), INSERT_CHUNK):
            async with self.gen.write_slots:
                existed |= await insert_new(collection, docs[i:i + INSERT_CHUNK])
        again = [d for d in docs if d["_id"] in existed]  # stored before by this writer
        for i in range(0, len(again), 20):
            async with self.gen.write_slots:
                await collection.bulk_write([ReplaceOne({"_id": d["_id"]}, d) for d in again[i:i + 20]])

    async def _store(self, key: str, fresh: list[Doc], known: list[Doc]) -> None:
        collection = self._collection(key)

        async def insert(part: list[Doc]) -> None:
            chunk = [encode(d) for d in part]  # encoded before its slot: the next insert waits ready
            async with self.gen.write_slots:
                await collection.insert_many(chunk, ordered=False)

        # Every write slot busy: the store always has an insert queued, also while the loop is
        # held by the fold (one insert at a time left it idle between two chunks).
        await asyncio.gather(*(insert(fresh[i:i + INSERT_CHUNK]) for i in range(0, len(fresh), INSERT_CHUNK)))
        await self.gen.write(collection, known)  # replaces, a few statements a command
