"""The read models in MongoDB: entity states, cell shards and their drill-down ids, per
generation (a rebuild fills a fresh generation and the pointer document switches to it).

Every read is by `_id` (the only filter FerretDB 1.x pushes down), concurrently; every
write replaces whole documents by `_id`, a few statements a command (FerretDB hangs on
bulk updates of ~100 statements, docs/reliability.md).

Nothing ever filters on what is inside an entity, a shard or a drill-down list, so each is
stored as `{_id, v}`, `v` its JSON text: FerretDB turns every field of a nested document
into SQLite JSON and back, and one string instead of hundreds of counters made writes
about 5x faster and reads of a shard far cheaper (measured: 10,000 vs 47,000 inserts/s).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from typing import Any

from pymongo import ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from reporting.adapters import pages as paging
from reporting.adapters.freshness import Commits
from reporting.adapters.rollups import apply_rollups
from reporting.domain.rollups import Parts, rollups_of

META = "meta"
POINTER = "active-generation"
DEFAULT_GENERATION = "g1"
SNAPSHOTS = "snapshots"
WRITE_CHUNK = 20
# FerretDB holds a statement's SQLite connection until its whole command ends, from a pool
# of 100 per database: in-flight statements (reads + writes) stay well below that.
READ_CONCURRENCY = 40
WRITE_CONCURRENCY = 2  # bulk commands of WRITE_CHUNK statements at once
CACHED_SHARDS = 50_000  # per generation, for queries (a shard is a few hundred bytes to a few KB)

Doc = dict[str, Any]
Held = dict[str, dict[str, Doc]]  # what read_entities read: page id (or entity id) -> entities


def encode(doc: Doc) -> Doc:
    """A document as stored: its _id and the rest as one JSON string."""
    rest = {k: v for k, v in doc.items() if k != "_id"}
    return {"_id": doc["_id"], "v": json.dumps(rest, ensure_ascii=False, separators=(",", ":"))}


def decode(doc: Doc | None) -> Doc | None:
    """The stored document as the domain knows it (one stored field by field is returned as is)."""
    if doc is None or not isinstance(doc.get("v"), str):
        return doc
    return {"_id": doc["_id"], **json.loads(doc["v"])}


def next_generation(name: str) -> str:
    """g1 -> g2 -> g3 ..."""
    return f"g{int(name.lstrip('g') or 0) + 1}"


def active_generation_sync(url: str, database: str, timeout_s: float = 60.0) -> str:
    """The active generation, read before the service subscribes (its consumer group
    depends on it); waits for the database rather than guess."""
    from pymongo import MongoClient

    deadline = time.monotonic() + timeout_s
    while True:
        client: MongoClient[Doc] = MongoClient(url, serverSelectionTimeoutMS=3000)
        try:
            doc = client[database][META].find_one({"_id": POINTER})
            return str((doc or {}).get("generation", DEFAULT_GENERATION))
        except Exception:
            if time.monotonic() >= deadline:
                raise
            time.sleep(1.0)
        finally:
            client.close()


class Generation:
    """The collections of one generation of read models."""

    def __init__(self, db: AsyncDatabase[Doc], name: str, commits: Commits | None = None):
        self.name = name
        self.db = db
        self.commits = commits
        # (collection, _id) -> (basis: the committed offsets it was read at, doc)
        self._cached: dict[tuple[str, str], tuple[Any, Doc | None]] = {}
        self._is_ferretdb: bool | None = None
        self.entities = db[f"{name}_entities"]
        self.shards = db[f"{name}_shards"]
        self.ids = db[f"{name}_ids"]
        self.partitions = db[f"{name}_partitions"]
        self.rollups = db[f"{name}_rollups"]
        self.pages = db[f"{name}_pages"]  # entities many to a document (adapters.pages)
        self._buckets: int | None = None  # pages per source partition; 0: one document per entity
        self._known_partitions: set[str] = set()
        self._writes_rollups: bool | None = None  # decided at this process's first batch
        self._reads_rollups: tuple[float, bool] = (0.0, False)
        self._partitions_cache: tuple[float, dict[str, list[int]]] = (0.0, {})
        self._semaphore = asyncio.Semaphore(READ_CONCURRENCY)
        self.write_slots = asyncio.Semaphore(WRITE_CONCURRENCY)

    async def _get(self, collection: Any, _id: str) -> Doc | None:
        async with self._semaphore:
            return await collection.find_one({"_id": _id})

    async def read(self, collection: Any, ids: Iterable[str], *, cached: bool = False) -> dict[str, Doc]:
        """Documents by _id. `cached` (queries of shards and drill-down lists): those whose
        source partition committed nothing since they were last read come from memory."""
        if cached and self.commits is not None:
            offsets = await self.commits.offsets(self.name)
            if offsets is not None:
                return await self._read_cached(collection, list(dict.fromkeys(ids)), offsets)
        return await self._read(collection, ids)

    async def _read_cached(self, collection: Any, wanted: list[str], offsets: dict[tuple[str, int], int]
                           ) -> dict[str, Doc]:
        found: dict[str, Doc] = {}
        missing: dict[str, Any] = {}
        per_topic: dict[str, list[tuple[int, int]]] = {}
        for (t, p), o in sorted(offsets.items()):
            per_topic.setdefault(t, []).append((p, o))
        for _id in wanted:
            basis: Any
            if collection.name == self.rollups.name:  # <cell>|<topic>: every partition of the topic
                basis = tuple(per_topic.get(_id.rsplit("|", 1)[1], ()))
            else:  # <cell>|<topic>|<partition>
                _, topic, partition = _id.rsplit("|", 2)
                basis = offsets.get((topic, int(partition)), -1)
            hit = self._cached.get((collection.name, _id))
            if hit is not None and hit[0] == basis:
                if hit[1] is not None:
                    found[_id] = hit[1]
            else:
                missing[_id] = basis
        if missing:
            loaded = await self._read(collection, missing)
            if len(self._cached) + len(missing) > CACHED_SHARDS:
                self._cached.clear()
            for _id, basis in missing.items():
                self._cached[(collection.name, _id)] = (basis, loaded.get(_id))
            found.update(loaded)
        return found

    async def _read(self, collection: Any, ids: Iterable[str]) -> dict[str, Doc]:
        return {i: decode(d) or d for i, d in (await self.read_raw(collection, ids)).items()}

    async def read_raw(self, collection: Any, ids: Iterable[str]) -> dict[str, Doc]:
        """Documents by _id as stored."""
        wanted = list(dict.fromkeys(ids))
        if len(wanted) > 1 and not await self._ferretdb():
            # MongoDB: one $in over the _id index is one round trip
            found: dict[str, Doc] = {}
            for i in range(0, len(wanted), 1000):
                async for doc in collection.find({"_id": {"$in": wanted[i:i + 1000]}}):
                    found[doc["_id"]] = doc
            return found
        # FerretDB 1.x reads a whole collection for $in: concurrent reads by _id instead
        docs = await asyncio.gather(*(self._get(collection, i) for i in wanted))
        return {i: d for i, d in zip(wanted, docs, strict=True) if d is not None}

    async def _ferretdb(self) -> bool:
        if self._is_ferretdb is None:
            try:
                info = await self.db.command("buildInfo")
                self._is_ferretdb = any(k.lower().startswith("ferretdb") for k in info)  # ferretdbVersion
            except Exception:
                return True  # unknown yet: the reads that work on both
        return self._is_ferretdb

    async def write(self, collection: Any, docs: list[Doc], *, new: set[str] | None = None,
                    encoded: bool = False) -> None:
        """Replace `docs` by _id; those named in `new` (not read from the store) are inserted
        in one command, which FerretDB does far faster than upserts. One that exists after
        all (a batch replayed after a crash) is replaced like the others. `encoded`: the
        documents are already as stored (pages)."""
        for d in docs:  # this replica's own writes: not from memory any more
            self._cached.pop((collection.name, d["_id"]), None)
        if not encoded:
            docs = [encode(d) for d in docs]
        if new:
            fresh = [d for d in docs if d["_id"] in new]
            docs = [d for d in docs if d["_id"] not in new]
            if fresh:
                try:
                    async with self.write_slots:
                        await collection.insert_many(fresh, ordered=False)
                except BulkWriteError as exc:
                    failed = {e["index"] for e in exc.details.get("writeErrors", [])}
                    docs += [d for i, d in enumerate(fresh) if i in failed]
        chunks = [docs[i:i + WRITE_CHUNK] for i in range(0, len(docs), WRITE_CHUNK)]

        async def replace(chunk: list[Doc]) -> None:
            async with self.write_slots:
                await collection.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in chunk],
                                            ordered=False)

        await asyncio.gather(*(replace(c) for c in chunks))

    async def note_partitions(self, pairs: Iterable[tuple[str, int]]) -> None:
        """Remember which source partitions exist, so a query knows every shard's _id."""
        new = [f"{t}|{p}" for t, p in pairs if f"{t}|{p}" not in self._known_partitions]
        if not new:
            return
        if self._writes_rollups is None:
            # Nothing written yet (no partition noted, which comes first): this generation
            # keeps roll-ups from its start. One written by an older version has none.
            if await self.partitions.find_one({}) is None:
                await self.start_rollups()
                await self.start_pages()
            else:
                self._writes_rollups = await self._rollups_marked()
        await self.write(self.partitions, [{"_id": key} for key in new])
        self._known_partitions.update(new)

    async def source_partitions(self, max_age_s: float = 2.0) -> dict[str, list[int]]:
        at, cached = self._partitions_cache
        if time.monotonic() - at < max_age_s:
            return cached
        found: dict[str, list[int]] = {}
        async for doc in self.partitions.find({}):  # a handful of documents
            topic, partition = doc["_id"].rsplit("|", 1)
            found.setdefault(topic, []).append(int(partition))
        self._partitions_cache = (time.monotonic(), found)
        return found

    async def update_rollups(self, changes: dict[str, Parts]) -> None:
        for rid in changes:  # this replica's own writes: not from memory any more
            self._cached.pop((self.rollups.name, rid), None)
        await apply_rollups(self, changes)

    # ---------------------------------------------------------------------- entities

    async def entity_buckets(self) -> int:
        """Pages per source partition (0: one document per entity, a generation written
        before pages existed)."""
        if self._buckets is None:
            doc = await self.db[META].find_one({"_id": f"pages|{self.name}"})
            self._buckets = int(doc["buckets"]) if doc else 0
        return self._buckets

    async def start_pages(self, buckets: int = paging.DEFAULT_BUCKETS) -> None:
        """Keep this (empty) generation's entities in pages of `buckets` per partition."""
        await self.db[META].replace_one({"_id": f"pages|{self.name}"},
                                        {"_id": f"pages|{self.name}", "buckets": buckets}, upsert=True)
        self._buckets = buckets

    async def read_entities(self, homes: dict[str, tuple[str, int]]) -> tuple[dict[str, Doc], Held]:
        """The stored entities among `homes` (entity id -> its records' topic and partition),
        and what `write_entities` needs back: the pages read (or, one document per entity,
        the entities found)."""
        buckets = await self.entity_buckets()
        if not buckets:
            found = await self._read(self.entities, homes)
            return found, {eid: {eid: doc} for eid, doc in found.items()}
        keys = {eid: paging.page_id(eid, home, buckets) for eid, home in homes.items()}
        held = {pid: paging.unpack(d) for pid, d in (await self.read_raw(self.pages, set(keys.values()))).items()}
        return {eid: held[pid][eid] for eid, pid in keys.items() if eid in held.get(pid, ())}, held

    async def write_entities(self, changed: dict[str, Doc], homes: dict[str, tuple[str, int]], held: Held) -> None:
        """Store the `changed` entities: their whole pages, as read by `read_entities` (the
        partition's single writer read them) with the changes in."""
        buckets = await self.entity_buckets()
        if not buckets:
            await self.write(self.entities, list(changed.values()), new=changed.keys() - held.keys())
            return
        touched: dict[str, dict[str, Doc]] = {}
        for eid, doc in changed.items():
            pid = paging.page_id(eid, homes[eid], buckets)
            page = touched.get(pid)
            if page is None:
                page = touched[pid] = dict(held.get(pid, {}))
            page[eid] = doc
        await self.write(self.pages, [paging.pack(pid, page) for pid, page in touched.items()],
                         new=touched.keys() - held.keys(), encoded=True)

    async def all_entities(self) -> dict[str, Doc]:
        """Every entity of the generation, whatever its layout (tests and tools: a scan)."""
        found = {d["_id"]: decode(d) or d async for d in self.entities.find({})}
        async for page in self.pages.find({}):
            found.update(paging.unpack(page))
        return found

    async def start_rollups(self) -> None:
        """Mark this (empty) generation as kept with roll-ups by every writer from now on."""
        await self.db[META].replace_one({"_id": self._marker}, {"_id": self._marker}, upsert=True)
        self._writes_rollups = True

    @property
    def _marker(self) -> str:
        return f"rollups|{self.name}"

    async def _rollups_marked(self) -> bool:
        return await self.db[META].find_one({"_id": self._marker}) is not None

    async def writes_rollups(self) -> bool:
        """Whether a batch must keep roll-ups (decided when it noted its partitions)."""
        return bool(self._writes_rollups)

    async def reads_rollups(self, max_age_s: float = 5.0) -> bool:
        """Whether queries may read roll-ups: every writer kept them from the start (a
        generation written by an older version is read shard by shard until rebuilt)."""
        at, marked = self._reads_rollups
        if not marked and time.monotonic() - at >= max_age_s:
            marked = await self._rollups_marked()
            self._reads_rollups = (time.monotonic(), marked)
        return marked

    async def drop(self) -> None:
        for collection in (self.entities, self.pages, self.shards, self.ids, self.partitions, self.rollups):
            await collection.drop()
        await self.db[META].delete_many({"_id": {"$in": [self._marker, f"pages|{self.name}"]}})
        self._writes_rollups, self._reads_rollups, self._buckets = None, (0.0, False), None
        self._known_partitions.clear()
        self._cached.clear()


class ReadModels:
    """The active generation, and the pointer that names it."""

    def __init__(self, db: AsyncDatabase[Doc], pointer_max_age_s: float = 1.0, commits: Commits | None = None):
        self.db = db
        self.commits = commits
        self.meta = db[META]
        self.snapshots = db[SNAPSHOTS]
        self.pointer_max_age_s = pointer_max_age_s
        self._generations: dict[str, Generation] = {}
        self._active: tuple[float, str] = (0.0, DEFAULT_GENERATION)

    def generation(self, name: str) -> Generation:
        if name not in self._generations:
            self._generations[name] = Generation(self.db, name, self.commits)
        return self._generations[name]

    async def active(self) -> Generation:
        at, name = self._active
        if time.monotonic() - at >= self.pointer_max_age_s:
            doc = await self.meta.find_one({"_id": POINTER})
            name = (doc or {}).get("generation", DEFAULT_GENERATION)
            self._active = (time.monotonic(), name)
        return self.generation(name)

    async def pointer(self) -> Doc:
        return await self.meta.find_one({"_id": POINTER}) or {"_id": POINTER, "generation": DEFAULT_GENERATION}

    async def switch(self, name: str, **details: Any) -> None:
        await self.meta.replace_one({"_id": POINTER}, {"_id": POINTER, "generation": name, **details}, upsert=True)
        self._active = (0.0, name)

    async def save_snapshot(self, doc: Doc) -> None:
        await self.snapshots.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    async def snapshot(self, _id: str) -> Doc | None:
        return await self.snapshots.find_one({"_id": _id})


class SnapshotView:
    """A month-close snapshot read like a generation: the shards it copied, nothing newer."""

    def __init__(self, doc: Doc):
        self.doc = doc
        self.name = f"snapshot:{doc['_id']}"
        self.shards: dict[str, Doc] = {d["_id"]: d for d in doc["shards"]}
        self.ids: dict[str, Doc] = {d["_id"]: d for d in doc.get("ids", [])}
        self.entities: dict[str, Doc] = {}
        self.rollups = rollups_of(doc["shards"])  # summed here: snapshots keep the shards as copied

    async def reads_rollups(self) -> bool:
        return True

    async def read(self, collection: Any, ids: Iterable[str], *, cached: bool = False) -> dict[str, Doc]:
        return {i: collection[i] for i in ids if i in collection}

    async def source_partitions(self, max_age_s: float = 0.0) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for item in self.doc["offsets"]:
            found.setdefault(item["topic"], []).append(int(item["partition"]))
        return found
