"""What a process has just inserted with events, handed to its own outbox relay.

The relay would otherwise read each such document back by `_id` (one store command per
event). Only a shortcut: the marker path stays (a crash loses just the handoff, and the
relay reads what it was not handed), and a document written again meanwhile is caught by
the relay's claim of revision 1. Per client object (see mongo.per_client) and collection,
the newest last; bounded in number, and in age well within the day claims are kept.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from crm_runtime.mongo import per_client

HANDOFF_MAX = 20_000
HANDOFF_FOR_S = 120.0


def _of(collection: AsyncCollection[dict[str, Any]]) -> OrderedDict[Any, tuple[float, dict[str, Any]]]:
    handoffs: OrderedDict[Any, tuple[float, dict[str, Any]]] = per_client(collection.database.client).setdefault(
        ("handoff", collection.database.name, collection.name), OrderedDict())
    return handoffs


def hand(collection: AsyncCollection[dict[str, Any]], doc: dict[str, Any]) -> None:
    """Remember `doc` (its `_id`, outbox and revision) as just inserted."""
    handed = _of(collection)
    handed[doc["_id"]] = (time.monotonic(), doc)
    while len(handed) > HANDOFF_MAX:
        handed.popitem(last=False)


def drop(collection: AsyncCollection[dict[str, Any]], doc_id: Any) -> None:
    """The document is no longer as inserted: the relay must read it."""
    _of(collection).pop(doc_id, None)


def clear(collection: AsyncCollection[dict[str, Any]]) -> None:
    """Another replica relays: what this one was handed would go stale."""
    _of(collection).clear()


def take(collection: AsyncCollection[dict[str, Any]], ids: Iterable[Any]) -> dict[Any, dict[str, Any]]:
    """The handed documents among `ids` that are still fresh (each taken once)."""
    handed, fresh_after = _of(collection), time.monotonic() - HANDOFF_FOR_S
    out: dict[Any, dict[str, Any]] = {}
    for doc_id in ids:
        at_doc = handed.pop(doc_id, None)
        if at_doc is not None and at_doc[0] > fresh_after:
            out[doc_id] = at_doc[1]
    return out
