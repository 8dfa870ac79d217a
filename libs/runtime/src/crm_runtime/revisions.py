"""Serialised writes to one document, on MongoDB and on FerretDB alike.

FerretDB 1.x runs an update by reading the matching documents, applying the update in
memory and writing each back whole by `_id`; the filter is not checked again at write
time. Two writers of one document (an agent's action and the outbox relay, say) can
therefore both pass a `{"rev": 7}` filter, and the second write silently undoes the
first. A unique insert, though, is atomic there too.

So every write to a document that several writers share first claims the document's
next revision by inserting `<collection>/<id>@<rev+1>` into a claims collection. Only one
writer can claim it; the others get `RevisionConflict`, reload and try again. A claim
left by a writer that died between claiming and writing is broken after `stale_after`
(10 s).
On MongoDB the claim is redundant with the `rev` filter, and costs one insert.

Claims are kept after the write (see the end of `write_revision`) for a day: MongoDB
expires them with a TTL index; FerretDB 1.x has none, so there `keep_claims_bounded`
deletes them itself every hour.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure

log = logging.getLogger(__name__)

REV = "rev"
STALE_AFTER = timedelta(seconds=10)  # a live writer holds a claim for milliseconds
CLAIMS = "revision_claims"
# A claim guards against a writer that read an older revision moments ago; a day is ample.
KEEP_CLAIMS = timedelta(days=1)
NOT_IMPLEMENTED = 238  # FerretDB's answer to a TTL index


class RevisionConflict(Exception):
    """Someone else wrote the document first: reload it and apply the change again."""


def _claims(collection: AsyncCollection[dict[str, Any]]) -> AsyncCollection[dict[str, Any]]:
    return collection.database[CLAIMS]


async def write_revision(
    collection: AsyncCollection[dict[str, Any]],
    doc_id: Any,
    expected_rev: int,
    update: dict[str, Any],
    *,
    stale_after: timedelta = STALE_AFTER,
) -> None:
    """Apply `update` to the document if it is still at `expected_rev`, making it `rev+1`."""
    claims = _claims(collection)
    claim_id = f"{collection.name}/{doc_id}@{expected_rev + 1}"
    now = datetime.now(UTC)
    try:
        await claims.insert_one({"_id": claim_id, "at": now})
    except DuplicateKeyError:
        held = await claims.find_one({"_id": claim_id})
        current = await collection.find_one({"_id": doc_id}, {REV: 1})
        stale = held is not None and held["at"] < now - stale_after
        if held is None or not (stale and current is not None and current.get(REV, 0) == expected_rev):
            raise RevisionConflict(doc_id) from None
        # The claimer died before writing: break its claim, then claim it ourselves.
        await claims.delete_one({"_id": claim_id, "at": held["at"]})
        try:
            await claims.insert_one({"_id": claim_id, "at": now})
        except DuplicateKeyError:
            raise RevisionConflict(doc_id) from None
    # Holding the claim for rev+1, the document is at `expected_rev` unless our read was
    # stale (it moved on before we claimed). Check by `_id` alone and write by `_id` alone:
    # FerretDB/SQLite pushes down no other filter, so `{_id, rev}` would read the table.
    current = await collection.find_one({"_id": doc_id}, {REV: 1})
    if current is None or current.get(REV, 0) != expected_rev:
        raise RevisionConflict(doc_id)
    update = {k: dict(v) if isinstance(v, dict) else v for k, v in update.items()}
    update.setdefault("$set", {})[REV] = expected_rev + 1
    await collection.update_one({"_id": doc_id}, update)
    # The claim stays: the revision check above reads through FerretDB, which has been
    # seen to answer from an older SQLite snapshot, and then only the claim stops a
    # writer that read the old revision. (Claims are deleted a day later: `keep_claims_bounded`.)


async def expire_claims(db: AsyncDatabase[dict[str, Any]]) -> bool:
    """Have the store delete claims older than `KEEP_CLAIMS` (a TTL index). False when the
    store cannot (FerretDB 1.x)."""
    try:
        await db[CLAIMS].create_index("at", name="expire_claims",
                                      expireAfterSeconds=int(KEEP_CLAIMS.total_seconds()))
    except OperationFailure as exc:
        if exc.code != NOT_IMPLEMENTED:
            raise
        return False
    return True


async def prune_claims(db: AsyncDatabase[dict[str, Any]], *, now: datetime | None = None) -> int:
    """Delete the claims older than `KEEP_CLAIMS`; returns how many. (On FerretDB a filter on
    `at` reads the whole collection: hence hourly, not per write.)"""
    cutoff = (now or datetime.now(UTC)) - KEEP_CLAIMS
    return (await db[CLAIMS].delete_many({"at": {"$lt": cutoff}})).deleted_count


async def keep_claims_bounded(db: AsyncDatabase[dict[str, Any]], *, every_s: float = 3600) -> None:
    """For the life of the service: have the store expire claims, or else prune them hourly."""
    while True:
        try:
            if await expire_claims(db):
                return
            pruned = await prune_claims(db)
            if pruned:
                log.info("old revision claims pruned", extra={"pruned": pruned})
        except asyncio.CancelledError:
            raise
        except Exception:  # the store is away: try again next time
            log.warning("old revision claims not pruned", exc_info=True)
        await asyncio.sleep(every_s)
