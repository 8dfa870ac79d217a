"""One read-modify-write loop for every shared document: load it with its revision, run a
pure function on it, save conditionally, and on a conflict start again from fresh state.

Why one helper: FerretDB 1.x re-checks no filter at write time, so every writer of a
shared document claims the next revision (`crm_runtime.revisions`) and retries when
someone else got there first. Hand-written, each of those loops differed a little in
what it retried on and how often; here the bound and the exceptions are stated once.

- `read_modify_write(load, save, change)`: the general form. `load()` returns the state
  and its revision (or None when absent); `change(state)` is pure and returns what to
  write, or None for "nothing to do"; `save(written, rev)` raises `RevisionConflict` (or a
  `DuplicateKeyError`, when two creators race) if the revision moved on.
- `update_document(collection, doc_id, change)`: the common case of one plain document
  whose new fields are `$set` (created at revision 0 when missing).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from crm_runtime.revisions import REV, STALE_AFTER, RevisionConflict, write_revision

S = TypeVar("S")
W = TypeVar("W")

ATTEMPTS = 20  # conflicts come from a handful of writers at once; 20 rounds is ample
# ...but a claim left by a writer that died mid-write blocks its document until it is
# stale (then the next writer breaks it): that long is waited out, more and more slowly.
CLAIM_WAIT_S = STALE_AFTER.total_seconds() + 5
CONFLICTS: tuple[type[Exception], ...] = (RevisionConflict, DuplicateKeyError)


async def read_modify_write(
    load: Callable[[], Awaitable[tuple[S, int] | None]],
    save: Callable[[W, int | None], Awaitable[None]],
    change: Callable[[S | None], W | None],
    *,
    attempts: int = ATTEMPTS,
    retry_on: tuple[type[Exception], ...] = CONFLICTS,
    what: Any = None,
    wait_out_s: float = CLAIM_WAIT_S,
) -> tuple[S | None, W | None]:
    """Returns the state the change was computed from and what was written (None when the
    change had nothing to write). Conflicts beyond `attempts` quick rounds are retried with
    a growing pause until `wait_out_s` has passed (a dead writer's claim: failing then
    would refuse, or dead-letter, a valid change); then `RevisionConflict(what)`."""
    deadline, pause, rounds = time.monotonic() + wait_out_s, 0.05, 0
    while True:
        rounds += 1
        found = await load()
        state, rev = found if found is not None else (None, None)
        written = change(state)
        if written is None:
            return state, None
        try:
            await save(written, rev)
        except retry_on:
            if rounds < attempts:
                continue
            if time.monotonic() >= deadline:
                raise RevisionConflict(what) from None
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)
            continue
        return state, written


async def update_document(
    collection: AsyncCollection[dict[str, Any]],
    doc_id: Any,
    change: Callable[[dict[str, Any] | None], Mapping[str, Any] | None],
    *,
    attempts: int = ATTEMPTS,
    projection: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """`change(doc)` returns the fields to `$set` (the document is created with them when
    missing), or None to leave it. Returns the fields written, or None."""

    async def load() -> tuple[dict[str, Any], int] | None:
        doc = await collection.find_one({"_id": doc_id}, dict(projection) if projection else None)
        return (doc, int(doc.get(REV, 0))) if doc is not None else None

    async def save(fields: Mapping[str, Any], rev: int | None) -> None:
        if rev is None:
            await collection.insert_one({**fields, "_id": doc_id, REV: 0})
        else:
            await write_revision(collection, doc_id, rev, {"$set": dict(fields)})

    outcome = await read_modify_write(load, save, change, attempts=attempts, what=doc_id)
    written = outcome[1]
    return dict(written) if written is not None else None
