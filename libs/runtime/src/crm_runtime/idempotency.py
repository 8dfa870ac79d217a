"""Effectively-once effects on at-least-once delivery, keyed by the event id.

Two tools, because without multi-document transactions the marker and the effect cannot
be one write unless they live in the same document:

* `applied_guard` / `mark_applied`: for effects on one aggregate document, the event id
  is recorded in the same update (`applied_events`), and the update's filter refuses an
  id already there. This is exact.
* `ProcessedEvents`: a per-service record of handled event ids for effects that are
  themselves idempotent (upserts keyed by a natural id, inserts with a deterministic
  `_id`); it lets a redelivered event skip work early.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

APPLIED = "applied_events"


def applied_guard(event_id: str) -> dict[str, Any]:
    """Filter clause: match only if this event was not applied to the document yet."""
    return {APPLIED: {"$ne": event_id}}


def mark_applied(update: dict[str, Any], event_id: str) -> dict[str, Any]:
    """Extend an update so it records `event_id` as applied to the document."""
    update = {k: dict(v) if isinstance(v, dict) else v for k, v in update.items()}
    update.setdefault("$addToSet", {})[APPLIED] = event_id
    return update


class ProcessedEvents:
    """Ids of events a consumer has fully handled."""

    def __init__(self, collection: AsyncCollection[dict[str, Any]]):
        self.collection = collection

    async def seen(self, consumer: str, event_id: str) -> bool:
        return await self.collection.find_one({"_id": f"{consumer}:{event_id}"}, {"_id": 1}) is not None

    async def remember(self, consumer: str, event_id: str) -> bool:
        """Record the event as handled; False if it already was (a concurrent redelivery)."""
        try:
            await self.collection.insert_one(
                {"_id": f"{consumer}:{event_id}", "at": datetime.now(UTC)}
            )
            return True
        except DuplicateKeyError:
            return False
