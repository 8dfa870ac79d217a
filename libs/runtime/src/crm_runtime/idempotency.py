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
from pymongo.errors import DuplicateKeyError

from crm_runtime.revisions import REV, RevisionConflict, write_revision

APPLIED = "applied_events"
KEEP_APPLIED = 1000  # ids remembered per document: redeliveries come within far fewer events


async def apply_once(collection: AsyncCollection[dict[str, Any]], doc_id: Any, event_id: str,
                     update: dict[str, Any], *, attempts: int = 50) -> bool:
    """Apply `update` to the document (created if missing) unless `event_id` was applied
    to it already. Returns False for a repeat."""
    for _ in range(attempts):
        doc = await collection.find_one({"_id": doc_id}, {APPLIED: 1, REV: 1})
        if doc is None:
            try:
                await collection.insert_one({"_id": doc_id, APPLIED: [], REV: 0})
            except DuplicateKeyError:
                pass  # someone else created it: apply to theirs
            continue
        applied = list(doc.get(APPLIED) or [])
        if event_id in applied:
            return False
        change = {k: dict(v) for k, v in update.items()}
        change.setdefault("$set", {})[APPLIED] = [*applied, event_id][-KEEP_APPLIED:]
        try:
            await write_revision(collection, doc_id, int(doc.get(REV, 0)), change)
            return True
        except RevisionConflict:
            continue  # another event of this aggregate was written first
    raise RevisionConflict(doc_id)
