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

from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from crm_runtime.revisions import REV, write_revision
from crm_runtime.rmw import read_modify_write

APPLIED = "applied_events"
KEEP_APPLIED = 1000  # ids remembered per document: redeliveries come within far fewer events


async def apply_once(collection: AsyncCollection[dict[str, Any]], doc_id: Any, event_id: str,
                     update: dict[str, Any], *, attempts: int = 50) -> bool:
    """Apply `update` to the document (created if missing) unless `event_id` was applied
    to it already. Returns False for a repeat."""

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
