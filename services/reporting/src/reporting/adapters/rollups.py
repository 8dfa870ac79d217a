"""Writing roll-ups (`domain.rollups`): documents with one writer per source partition
each, so several writers share one, and FerretDB 1.x has no atomic update.

Every change claims the document's next revision (`crm_runtime.revisions`: a unique
insert, atomic there too), all claims of a batch in one insert; a document whose claim
is taken (another partition's writer got there first) or that was created meanwhile is
read again and merged again, one at a time through `write_revision` (which also breaks a
claim left by a writer that died). Within one process a topic's batches come one after
another, so the documents of one topic meet only other replicas' writers.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from crm_runtime.batching import insert_new
from crm_runtime.revisions import CLAIMS, REV, write_revision
from crm_runtime.rmw import read_modify_write
from pymongo import ReplaceOne

from reporting.domain.rollups import Doc, Parts, merge_rollup

WRITE_CHUNK = 20


def encode(doc: Doc, rev: int) -> Doc:
    rest = {k: v for k, v in doc.items() if k != "_id"}
    return {"_id": doc["_id"], "v": json.dumps(rest, ensure_ascii=False, separators=(",", ":")), REV: rev}


def decode(doc: Doc) -> tuple[Doc, int]:
    return {"_id": doc["_id"], **json.loads(doc["v"])}, int(doc.get(REV, 0))


async def apply_rollups(gen: Any, changes: dict[str, Parts]) -> None:
    """Merge each roll-up's contributions into its stored document. `gen` is a
    `store.Generation` (its reads by _id, its write slots)."""
    if not changes:
        return
    collection = gen.rollups
    stored = await gen.read_raw(collection, changes)
    now = datetime.now(UTC)
    fresh: list[Doc] = []  # new documents, inserted at revision 0
    planned: dict[str, tuple[int, Doc]] = {}  # _id -> (revision read, new document)
    for rid, parts in changes.items():
        found = stored.get(rid)
        doc, rev = decode(found) if found is not None else (None, -1)
        merged = merge_rollup(doc, rid, parts)
        if merged is None:
            continue
        if rev < 0:
            fresh.append(encode(merged, 0))
        else:
            planned[rid] = (rev, merged)
    slow = {d["_id"] for d in fresh} & await _insert(gen, collection, fresh)  # created meanwhile
    claim_of = {rid: f"{collection.name}/{rid}@{rev + 1}" for rid, (rev, _) in planned.items()}
    taken = await insert_new(collection.database[CLAIMS], [{"_id": c, "at": now} for c in claim_of.values()])
    # As in crm_runtime.idempotency.apply_once_many: the claim of rev+1 is the guard, kept a
    # day; a document past the revision we read got there through that claim.
    ready = [ReplaceOne({"_id": rid}, encode(doc, rev + 1)) for rid, (rev, doc) in planned.items()
             if claim_of[rid] not in taken]
    slow.update(rid for rid in planned if claim_of[rid] in taken)

    async def replace(chunk: list[ReplaceOne]) -> None:
        async with gen.write_slots:
            await collection.bulk_write(chunk, ordered=False)

    await asyncio.gather(*(replace(ready[i:i + WRITE_CHUNK]) for i in range(0, len(ready), WRITE_CHUNK)))
    await asyncio.gather(*(_one(collection, rid, changes[rid]) for rid in slow))


async def _insert(gen: Any, collection: Any, docs: list[Doc]) -> set[Any]:
    if not docs:
        return set()
    async with gen.write_slots:
        return await insert_new(collection, docs)


async def _one(collection: Any, rid: str, parts: Parts) -> None:
    """One roll-up read, merged and written under its revision, again until it sticks."""

    async def load() -> tuple[Doc | None, int] | None:
        found = await collection.find_one({"_id": rid})
        if found is None:
            return None
        doc, rev = decode(found)
        return doc, rev

    def change(doc: Doc | None) -> Doc | None:
        return merge_rollup(doc, rid, parts)

    async def save(doc: Doc, rev: int | None) -> None:
        if rev is None:
            await collection.insert_one(encode(doc, 0))  # DuplicateKeyError: created meanwhile, again
        else:
            await write_revision(collection, rid, rev, {"$set": {"v": encode(doc, rev)["v"]}})

    await read_modify_write(load, save, change, what=rid)
