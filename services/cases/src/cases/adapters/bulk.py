"""Batch forms of three runtime writes that `crm_runtime.batching` does not offer (yet):
a revision-claimed read-modify-write of many shared documents, durable timers scheduled
many at once, and aggregates inserted many at once with their outbox events.

They belong next to their single forms (`crm_runtime.rmw.update_document`,
`crm_runtime.leases.Timers.schedule`, `crm_runtime.outbox.Outbox.insert`) and write the
same documents those do; they live here until they move to the runtime.

Bulk commands go one after another, never side by side: FerretDB 1.24 holds one of its
SQLite connections per statement until a command ends, and concurrent bulk commands
have hung it (see crm_runtime.batching for the other limits).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from crm_runtime import handoff, known
from crm_runtime.batching import INSERT_CHUNK, find_by_ids, group_by_key, insert_new, run_per_key, update_by_ids
from crm_runtime.leases import Timers
from crm_runtime.outbox import MARKER_GRACE, MARKERS, OUTBOX, Outbox, OutgoingEvent, new_document_with_outbox
from crm_runtime.revisions import CLAIMS, REV, RevisionConflict
from crm_runtime.rmw import update_document
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

Change = Callable[[dict[str, Any] | None], Mapping[str, Any] | None]
CONFLICT_ROUNDS = 5  # a shared document whose claim keeps losing goes the single way
# Reads by `_id` side by side: more in flight keeps FerretDB busy while each waits on SQLite
# (16 is the runtime's default); well under its 100 connections, which requests share.
READS = 32


async def update_documents(collection: AsyncCollection[dict[str, Any]], changes: Mapping[Any, Change], *,
                           loaded: Mapping[Any, dict[str, Any] | None] | None = None,
                           remember: bool = False) -> set[Any]:
    """`update_document(collection, id, change)` for every id, in a few commands: one read
    of all (skipped for the documents in `loaded`, read moments ago, None for one absent
    then), one insert of the new ones, one insert of every revision claim, bulk updates. A
    document whose claim conflicts, or created meanwhile, takes the single path, which
    retries. Returns the ids that took it (written since they were read: the caller's
    state was stale). `remember`: start from what this process wrote last where it has not
    been read (crm_runtime.known; only for changes of whole top-level fields).

    No re-read of the revisions once claimed (write_revision's check): every writer of
    these documents claims its revision first and claims are kept for a day, so a read
    that was stale (another writer made rev+1 since) finds rev+1 claimed. The re-read
    cost a find per document, a whole queue part's worth of bytes each."""
    if not changes:
        return set()
    given = dict(loaded or {})
    docs = {doc_id: doc for doc_id, doc in given.items() if doc is not None}
    missing = [doc_id for doc_id in changes if doc_id not in given]
    if remember:
        docs.update(known.recall(collection, missing))
        missing = [doc_id for doc_id in missing if doc_id not in docs]
    docs.update(await find_by_ids(collection, missing, concurrency=READS))
    creates, planned = [], {}
    for doc_id, change in changes.items():
        doc = docs.get(doc_id)
        fields = change(doc)
        if fields is None:
            continue
        if doc is None:
            creates.append({**fields, "_id": doc_id, REV: 0})
        else:
            planned[doc_id] = (int(doc.get(REV, 0)), dict(fields))
    if remember:
        known.forget(collection, [*planned, *(c["_id"] for c in creates)])  # until written
    slow = set(await insert_new(collection, creates))
    now = datetime.now(UTC)
    claim_of = {doc_id: f"{collection.name}/{doc_id}@{rev + 1}" for doc_id, (rev, _) in planned.items()}
    taken = await insert_new(collection.database[CLAIMS], [{"_id": c, "at": now} for c in claim_of.values()])
    ready = [d for d in planned if claim_of[d] not in taken]
    slow.update(d for d in planned if d not in ready)
    await update_by_ids(collection, [(d, {"$set": {**planned[d][1], REV: planned[d][0] + 1}}) for d in ready])
    if remember:
        written = [*(c for c in creates if c["_id"] not in slow),
                   *({**docs[d], **planned[d][1], REV: planned[d][0] + 1} for d in ready)]
        known.remember(collection, [doc for doc in written if not any("." in field for field in doc)])

    async def single(doc_id: Any, _: Sequence[Any]) -> None:
        for attempt in range(CONFLICT_ROUNDS):
            try:
                await update_document(collection, doc_id, changes[doc_id], attempts=50)
                return
            except RevisionConflict:
                if attempt == CONFLICT_ROUNDS - 1:
                    raise
                await asyncio.sleep(0.2 * 2 ** attempt)  # a dead writer's claim goes stale

    failures = await run_per_key({d: [d] for d in slow}, single, concurrency=8)
    if failures:
        raise next(iter(failures.values()))
    return slow


async def schedule_timers(timers: Timers, wanted: Sequence[tuple[str, str, datetime, dict[str, Any]]]) -> None:
    """`timers.schedule(timer_id, kind, due_at, payload)` for each, with the same documents:
    the timer, and its entry in the index of its minute (`<minute>#<n>`), the entries of
    one minute taking their slots with one counter increment."""
    if not wanted:
        return
    now_bucket = int(timers.clock().timestamp() // timers.BUCKET_S)
    bucket_of = {tid: max(int(due.timestamp() // timers.BUCKET_S), now_bucket) for tid, _, due, _ in wanted}
    # New timers (new cases) are inserted without a read; one that exists already (a
    # delivery again) is scheduled the single way, which moves it if it must.
    existed = await insert_new(timers.collection, [
        {"_id": tid, "kind": kind, "due_at": due, "payload": payload, "state": "pending", "bucket": bucket_of[tid]}
        for tid, kind, due, payload in wanted])
    for tid, kind, due, payload in wanted:
        if tid in existed:
            await timers.schedule(tid, kind, due, payload)
    enter = [tid for tid, _, _, _ in wanted if tid not in existed]
    for bucket, ids in group_by_key(enter, lambda tid: bucket_of[tid]).items():
        # The counter's $inc is a hint (as in SlotIndex.add); the unique insert decides.
        counter = await timers.index.find_one_and_update(
            {"_id": f"count:{bucket}"}, {"$inc": {"n": len(ids)}}, upsert=True, return_document=ReturnDocument.AFTER)
        first = int(counter["n"]) - len(ids) if counter else 0
        slots = {f"{bucket}#{first + i}": tid for i, tid in enumerate(ids)}
        lost = await insert_new(timers.index, [{"_id": slot, "v": tid} for slot, tid in slots.items()])
        for slot in lost:  # another writer took the slot: the single path finds a free one
            await timers.slots.add(str(bucket), slots[slot])


def _marker(collection: str, doc_id: Any, at: datetime) -> dict[str, Any]:
    # The shape of `Outbox._mark`'s marker (its time too, which a batch relay may read).
    return {"_id": f"{collection}|{doc_id}", "collection": collection, "doc_id": doc_id, "at": at}


async def insert_with_outbox(outbox: Outbox, collection: AsyncCollection[dict[str, Any]],
                             entries: Sequence[tuple[dict[str, Any], Sequence[OutgoingEvent]]]) -> set[Any]:
    """`outbox.insert(collection, document, events)` for each entry: the markers, then the
    documents in bulk, then the new ones handed to the relay. Returns the `_id`s that
    existed already (left as they were).

    As the single form, no second marker after the documents: a relay that reads a marked
    document before it is inserted keeps the marker while it is young (MARKER_GRACE).
    Only an insert slower than half of that marks again (the marker may be gone by then);
    marking again otherwise inserted every marker a second time, all duplicates, which
    FerretDB answers one document at a time."""
    if not entries:
        return set()
    now = datetime.now(UTC)
    markers = [_marker(collection.name, doc["_id"], now) for doc, events in entries if events]
    marker_collection = collection.database[MARKERS]
    await insert_new(marker_collection, markers)
    stored = [new_document_with_outbox(doc, events) for doc, events in entries]
    existed: set[Any] = set()
    for start in range(0, len(stored), INSERT_CHUNK):
        chunk = stored[start:start + INSERT_CHUNK]
        existed |= await insert_new(collection, chunk)
        # Handed to this process's relay as inserted (see crm_runtime.handoff), a chunk at a
        # time: a relay round during the next chunk's insert then finds these handed, not
        # read. A later write through Outbox.update drops one; another replica's write is
        # caught by the relay's claim of revision 1.
        for doc in chunk:
            if doc[OUTBOX] and doc["_id"] not in existed:
                handoff.hand(collection, {"_id": doc["_id"], OUTBOX: doc[OUTBOX], REV: 0})
    if datetime.now(UTC) - now > MARKER_GRACE / 2:
        await insert_new(marker_collection, [_marker(collection.name, m["doc_id"], datetime.now(UTC))
                                             for m in markers if m["doc_id"] not in existed])
    if markers and outbox.notify:
        outbox.notify()
    return existed
