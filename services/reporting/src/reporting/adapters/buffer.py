"""A generation read through and written behind an in-memory cache, for the rebuild and
for a replica following a generation it did not start with.

The rebuild is the only writer of its fresh generation (its own consumer group), so what
it has not written does not exist: a miss needs no read. Batches are applied in memory;
shards and drill-down lists stay there until the end, and so do the entities: those not
touched lately are kept as their compact JSON text when too many are held (a history is
mostly in time order). Everything is stored once, when the replay has caught up, before
the switch; the entities in pages sized for how many each partition has (adapters.pages).
Kafka offsets are committed only after a full flush. A crash before one replays those
events, which the stored offsets make harmless (a rebuild that crashed starts again).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

from crm_runtime.batching import insert_new
from pymongo import ReplaceOne
from pymongo.errors import BulkWriteError

from reporting.adapters import pages as paging
from reporting.adapters import rollups
from reporting.adapters.store import Doc, Generation, Held, encode
from reporting.domain.apply import tidy
from reporting.domain.rollups import Parts, rollups_of

INSERT_CHUNK = 1000
KINDS = ("entities", "shards", "ids")
Home = tuple[str, int]  # an entity's topic and partition


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
        self._recent: set[str] = set()  # entities touched since room was last made
        self._home: dict[str, Home] = {}  # fresh: where each entity held as a document lives
        self._homes: dict[Home, Home] = {}  # one tuple per partition, shared by its entities
        self._cold: dict[Home, dict[str, str]] = {}  # fresh: entities let go, as JSON text
        self._pending: list[tuple[dict[str, Doc], dict[str, Home], Held]] = []  # entity writes not stored yet
        self.marks: dict[tuple[str, int], int] = {}  # per source partition, how far its shards in memory are
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

    def load_entities(self, homes: dict[str, Home]) -> None:
        """Fresh: have the entities of `homes` (entity id -> topic and partition) held as
        documents, those let go turned back from their text (nothing is stored yet)."""
        hot, recent = self.cache[self.entities], self._recent
        for eid, home in homes.items():
            recent.add(eid)
            if eid in hot:
                continue
            home = self._homes.setdefault(home, home)
            self._home[eid] = home
            text = self._cold.get(home, {}).pop(eid, None)
            if text is not None:
                hot[eid] = {"_id": eid, **json.loads(text)}

    def make_room(self) -> None:
        """Fresh: when too many entities are held as documents, keep those not touched
        since the last call as JSON text (a few hundred bytes each instead of a few KB)."""
        hot = self.cache[self.entities]
        if len(hot) > self.max_entities:
            for eid in [e for e in hot if e not in self._recent]:
                home = self._home.pop(eid)
                self._cold.setdefault(home, {})[eid] = paging.entity_text(hot.pop(eid))
        self._recent.clear()
        self.changed[self.entities].clear()  # every entity is stored at the end anyway

    async def read_entities(self, homes: dict[str, Home]) -> tuple[dict[str, Doc], Held]:
        """Shared with other writers (not fresh): from the store, after what is held."""
        if self._pending:
            await self.flush()  # a batch's pages read after the last one's are stored
        return await self.gen.read_entities(homes)

    async def write_entities(self, changed: dict[str, Doc], homes: dict[str, Home], held: Held) -> None:
        self._pending.append((changed, homes, held))  # stored by the flush, after the shards

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
        """Another writer may now own some partitions: read everything from the store again
        (entity writes not stored are dropped: their records were not committed)."""
        self.fresh = False
        for cache in self.cache.values():
            cache.clear()
        self.marks.clear()
        self._recent.clear()
        self._pending.clear()

    @property
    def dirty(self) -> int:
        return sum(len(d) for d in self.changed.values()) + len(self._pending)

    async def flush(self) -> None:
        """Store changed documents: shards and ids (and a fresh generation's roll-ups)
        first, then entities (a crash between the two recomputes contributions the shards
        then skip). A fresh generation is stored whole once: from then on it is written like
        any other (its entities read from the store)."""
        whole = self.fresh and await self.gen.writes_rollups()
        await asyncio.gather(self._store_taken(self.shards, self._take(self.shards)),
                             self._store_taken(self.ids, self._take(self.ids)),
                             self._store_rollups() if whole else asyncio.sleep(0))
        if self.fresh:
            await self._store_pages()
            self.fresh = False
        while self._pending:
            await self.gen.write_entities(*self._pending[0])
            self._pending.pop(0)
        self.changed[self.entities].clear()
        if not self.fresh:  # shared with other writers after a hand-over: keep nothing
            for cache in self.cache.values():
                cache.clear()

    async def _store_pages(self) -> None:
        """Every entity of a fresh generation, in pages of about ENTITIES_PER_PAGE."""
        texts = self._cold
        for eid, doc in self.cache[self.entities].items():
            texts.setdefault(self._home[eid], {})[eid] = paging.entity_text(doc)
        buckets = paging.buckets_for(max((len(t) for t in texts.values()), default=0))
        pages: dict[str, dict[str, str]] = {}
        for home, items in texts.items():
            for eid, text in items.items():
                pages.setdefault(paging.page_id(eid, home, buckets), {})[eid] = text
        await self.gen.start_pages(buckets)
        docs = [paging.pack_texts(pid, page) for pid, page in pages.items()]
        await self._store(self.entities, docs, [])
        self._cold, self._home = {}, {}
        self.cache[self.entities].clear()

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
        """Insert `fresh`, replace `known`; entities are pages, packed already."""
        packed = key == self.entities
        collection = self.gen.pages if packed else self._collection(key)

        async def insert(part: list[Doc]) -> None:
            failed: set[int] = set()
            chunk = part if packed else [encode(d) for d in part]  # encoded before its slot: the next waits ready
            async with self.gen.write_slots:
                try:
                    await collection.insert_many(chunk, ordered=False)
                except BulkWriteError as exc:  # stored by an earlier try that failed after it: replaced
                    failed = {e["index"] for e in exc.details.get("writeErrors", [])}
                    again = [d for i, d in enumerate(chunk) if i in failed]
            if failed:
                await self.gen.write(collection, again, encoded=True)

        # Every write slot busy: the store always has an insert queued, also while the loop is
        # held by the fold (one insert at a time left it idle between two chunks).
        await asyncio.gather(*(insert(fresh[i:i + INSERT_CHUNK]) for i in range(0, len(fresh), INSERT_CHUNK)))
        await self.gen.write(collection, known, encoded=packed)  # replaces, a few statements a command

