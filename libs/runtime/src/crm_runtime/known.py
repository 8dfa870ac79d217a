"""What this process last wrote to a shared document, so that its next batch need not read
the document again (`idempotency.apply_once_many`, and bulk read-modify-writes).

Nearly always still true: a consumer owns its partitions, hence mostly its aggregates.
When it is not (another replica wrote, a rebalance), the writer's claim of rev+1 is
refused, since the other writer claimed it (claims are kept a day), and the document
takes the path that reads it. So a remembered document is only a guess at the state,
never trusted past its revision's claim. Per client object (`mongo.per_client`) and
collection, bounded in number, and in age so that no entry outlives the claims that make
it safe.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from crm_runtime.mongo import per_client

KNOWN_DOCS = 20_000
KNOWN_FOR_S = 600.0


def _of(collection: AsyncCollection[dict[str, Any]]) -> OrderedDict[Any, tuple[float, dict[str, Any], bool]]:
    known: OrderedDict[Any, tuple[float, dict[str, Any], bool]] = per_client(collection.database.client).setdefault(
        ("known", collection.database.name, collection.name), OrderedDict())
    return known


def recall(collection: AsyncCollection[dict[str, Any]], ids: Iterable[Any], *,
           whole: bool = True) -> dict[Any, dict[str, Any]]:
    """The documents among `ids` as this process last wrote them (with their revision), by
    id; each a shallow copy, for the caller to change. `whole=False`: the parts
    `apply_once_many` keeps (revision, applied ids); a whole document is never taken from
    those parts, nor the parts from a whole document that may lack them."""
    known, fresh_after = _of(collection), time.monotonic() - KNOWN_FOR_S
    out = {}
    for doc_id in ids:
        entry = known.get(doc_id)
        if entry is not None and entry[0] > fresh_after and entry[2] == whole:
            out[doc_id] = dict(entry[1])
    return out


def remember(collection: AsyncCollection[dict[str, Any]], docs: Iterable[dict[str, Any]], *,
             whole: bool = True) -> None:
    """Just written: each document (its `_id`, revision and whatever the next writer
    reads of it) as it now stands; `whole=False` for parts of it (see `recall`)."""
    known, now = _of(collection), time.monotonic()
    for doc in docs:
        known[doc["_id"]] = (now, doc, whole)
        known.move_to_end(doc["_id"])
    # Oldest first: drop what can no longer be recalled, so a burst's documents do not stay.
    expired = now - KNOWN_FOR_S
    while known and (len(known) > KNOWN_DOCS or next(iter(known.values()))[0] <= expired):
        known.popitem(last=False)


def forget(collection: AsyncCollection[dict[str, Any]], ids: Iterable[Any]) -> None:
    """About to be written, or written by a path that does not say how: read it next time."""
    known = _of(collection)
    for doc_id in ids:
        known.pop(doc_id, None)
