"""Effectively-once effects on at-least-once delivery, keyed by the event id.

Most effects need nothing more than a natural key: a contact's id derives from its
channel reference, a case's from its first contact, a case event's id is
`<case_id>:<sequence>`, so doing it twice writes the same thing twice.

An effect that accumulates (a counter, a list) is not like that. `apply_once` applies it
to one aggregate document and records the event id in the same write
(`applied_events`), refusing an id already there. The write goes through a revision claim
(`crm_runtime.revisions`), so it is exact on FerretDB 1.x too, where a filter such as
`{"applied_events": {"$ne": id}}` is not re-checked at write time and two redeliveries
racing each other would both pass it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from crm_runtime import known
from crm_runtime.batching import KEY_CONCURRENCY, find_by_ids, group_by_key, insert_new, run_per_key, update_by_ids
from crm_runtime.revisions import CLAIMS, REV, write_revision
from crm_runtime.rmw import read_modify_write

APPLIED = "applied_events"
KEEP_APPLIED = 1000  # ids remembered per document: redeliveries come within far fewer events


async def apply_once(collection: AsyncCollection[dict[str, Any]], doc_id: Any, event_id: str,
                     update: dict[str, Any], *, attempts: int = 50) -> bool:
    """Apply `update` to the document (created if missing) unless `event_id` was applied
    to it already. Returns False for a repeat.

    Conflicts that outlast `attempts` rounds are retried, more and more slowly, for as
    long as a claim left by a writer that died mid-write can block the document (see
    `read_modify_write`): a consumer killed there leaves one, and the partition's next
    owner, which may get the event before that claim is stale, must wait it out, not give
    up (and dead-letter a valid event)."""
    return await _apply_once_now(collection, doc_id, event_id, update, attempts=attempts)


async def _apply_once_now(collection: AsyncCollection[dict[str, Any]], doc_id: Any, event_id: str,
                          update: dict[str, Any], *, attempts: int) -> bool:

    async def load() -> tuple[list[str], int] | None:
        doc = await collection.find_one({"_id": doc_id}, {APPLIED: 1, REV: 1})
        return (list(doc.get(APPLIED) or []), int(doc.get(REV, 0))) if doc is not None else None

    def change(applied: list[str] | None) -> dict[str, Any] | None:
        if applied is not None and event_id in applied:
            return None
        out = {k: dict(v) for k, v in update.items()}
        out.setdefault("$set", {})[APPLIED] = [*(applied or []), event_id][-KEEP_APPLIED:]
        return out

    async def save(change: dict[str, Any], rev: int | None) -> None:
        if rev is None:  # created first (at revision 0), so the update itself runs as usual
            await collection.insert_one({"_id": doc_id, APPLIED: [], REV: 0})
            rev = 0
        await write_revision(collection, doc_id, rev, change)

    outcome = await read_modify_write(load, save, change, attempts=attempts, what=doc_id)
    written = outcome[1]
    return written is not None


# --------------------------------------------------------------------------- batch form
# One batch of events: per document one read, one claim (all claims inserted in one
# command), one write (all in few `bulk_write`s), instead of ~4 round trips per event.

FOLDABLE = {"$inc", "$set", "$max", "$min", "$push", "$addToSet", "$unset"}


def fold_updates(updates: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """One update document with the effect of applying `updates` in order, or None when
    they cannot be folded into one (an operator not handled here, or two operators, or two
    nested paths, touching the same field: MongoDB refuses conflicting paths)."""
    out: dict[str, dict[str, Any]] = {}
    owner: dict[str, str] = {}  # field path -> operator using it
    for update in updates:
        for op, fields in update.items():
            if op not in FOLDABLE or not isinstance(fields, Mapping):
                return None
            target = out.setdefault(op, {})
            for path, value in fields.items():
                if owner.setdefault(path, op) != op:
                    return None
                if path in target:
                    merged = _merge(op, target[path], value)
                    if merged is _CANNOT:
                        return None
                    target[path] = merged
                else:
                    if op in ("$push", "$addToSet") and isinstance(value, Mapping) and set(value) != {"$each"}:
                        return None  # $slice, $sort, $position: order-dependent, leave to the single path
                    target[path] = value
    parts = [path.split(".") for path in owner]
    if any(".".join(p[:n]) in owner for p in parts for n in range(1, len(p))):
        return None  # `a` and `a.b` in one update: MongoDB refuses the conflict
    return {op: fields for op, fields in out.items() if fields}


_CANNOT = object()


def _merge(op: str, old: Any, new: Any) -> Any:
    if op == "$inc":
        return old + new
    if op in ("$set", "$unset"):
        return new
    if op == "$max":
        return max(old, new)
    if op == "$min":
        return min(old, new)
    # $push / $addToSet: append in order through $each.
    def each(v: Any) -> list[Any] | None:
        if isinstance(v, Mapping):
            return list(v["$each"]) if set(v) == {"$each"} else None
        return [v]
    a, b = each(old), each(new)
    return _CANNOT if a is None or b is None else {"$each": a + b}


async def apply_once_many(
    collection: AsyncCollection[dict[str, Any]],
    items: Sequence[tuple[Any, str, Mapping[str, Any]]],
    *,
    concurrency: int = KEY_CONCURRENCY,
) -> list[bool]:
    """`apply_once` for many `(doc_id, event_id, update)` at once; returns, per item, whether
    it was applied now (False: a repeat, in an earlier write or earlier in `items`).

    Per document: read once, drop event ids already in `applied_events`, fold the remaining
    updates in order (`fold_updates`), claim the next revision (all claims in one insert),
    and write once (all writes in few `bulk_write`s). A
    document whose claim or check conflicts, or whose updates do not fold, takes the
    per-document path (`apply_once` event by event), waiting out a claim left by a writer
    that died. Same guarantee as `apply_once`: each event id applied once, also on FerretDB.
    """
    results = [False] * len(items)
    by_doc = group_by_key(range(len(items)), lambda i: items[i][0])
    # What this process last wrote (revision, applied ids) is not read again: when that is
    # no longer true, the claim of rev+1 is refused and the document goes one by one.
    cached = known.recall(collection, by_doc, whole=False)
    docs = await find_by_ids(collection, [d for d in by_doc if d not in cached], {APPLIED: 1, REV: 1})
    docs.update(cached)
    missing = [doc_id for doc_id in by_doc if doc_id not in docs]
    slow: set[Any] = await insert_new(collection, [{"_id": d, APPLIED: [], REV: 0} for d in missing])
    for doc_id in missing:
        if doc_id not in slow:
            docs[doc_id] = {"_id": doc_id, APPLIED: [], REV: 0}

    planned: dict[Any, tuple[int, dict[str, Any], list[int]]] = {}  # doc -> (rev, update, item indexes)
    for doc_id, indexes in by_doc.items():
        if doc_id in slow:
            continue
        applied = list(docs[doc_id].get(APPLIED) or [])
        seen = set(applied)
        fresh = []
        for i in indexes:
            if items[i][1] not in seen:
                seen.add(items[i][1])
                fresh.append(i)
        if not fresh:
            continue
        update = fold_updates([items[i][2] for i in fresh])
        if update is None:
            slow.add(doc_id)
            continue
        rev = int(docs[doc_id].get(REV, 0))
        update.setdefault("$set", {})
        update["$set"] = {**update["$set"], APPLIED: [*applied, *(items[i][1] for i in fresh)][-KEEP_APPLIED:],
                          REV: rev + 1}
        planned[doc_id] = (rev, update, fresh)
    known.forget(collection, [*slow, *planned])  # until written, what we knew may be wrong

    now = datetime.now(UTC)
    claim_of = {doc_id: f"{collection.name}/{doc_id}@{rev + 1}" for doc_id, (rev, _, _) in planned.items()}
    taken = await insert_new(collection.database[CLAIMS], [{"_id": c, "at": now} for c in claim_of.values()])
    # No second read of the revisions, unlike `write_revision`: a document that moved past
    # the revision we read did so through the claim of rev+1, which is kept for a day, so
    # our claim would have been refused. (FerretDB may answer that second read from an
    # older snapshot anyway: the claim is the guard.) It halves the reads of a batch.
    ready = [d for d in planned if claim_of[d] not in taken]
    slow.update(d for d in planned if claim_of[d] in taken)
    await update_by_ids(collection, [(d, planned[d][1]) for d in ready])
    for d in ready:
        for i in planned[d][2]:
            results[i] = True
    known.remember(collection, [{"_id": d, REV: planned[d][0] + 1, APPLIED: planned[d][1]["$set"][APPLIED]}
                                for d in ready], whole=False)

    async def one_by_one(doc_id: Any, indexes: Sequence[int]) -> None:
        for i in indexes:
            results[i] = await apply_once(collection, doc_id, items[i][1], dict(items[i][2]), attempts=5)

    failures = await run_per_key({d: by_doc[d] for d in slow}, one_by_one, concurrency=concurrency)
    if failures:
        raise next(iter(failures.values()))
    return results

