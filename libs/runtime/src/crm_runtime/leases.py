"""Leases and durable timers, for work that exactly one replica must do.

A lease is a document `{_id: name, owner, expires_at}` claimed with one atomic
`find_one_and_update`; the holder renews it, and if it dies another replica takes over
once it expires. Timers (SLA clocks, survey due dates, send windows) are due-times in
the database, claimed the same way, so a restart misses none and two replicas never
fire one at the same time. A firing handler must still be idempotent: a replica that
dies after the effect but before marking the timer done leaves it to be fired again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

log = logging.getLogger(__name__)


def replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _now() -> datetime:
    return datetime.now(UTC)


class Lease:
    def __init__(self, collection: AsyncCollection[dict[str, Any]], name: str, owner: str,
                 ttl_s: float = 10.0, clock: Callable[[], datetime] = _now):
        self.collection = collection
        self.name = name
        self.owner = owner
        self.ttl = timedelta(seconds=ttl_s)
        self.clock = clock

    async def acquire_or_renew(self) -> bool:
        """Claim the lease if free or expired, renew it if ours; True while we hold it."""
        now = self.clock()
        try:
            doc = await self.collection.find_one_and_update(
                {"_id": self.name, "$or": [{"owner": self.owner}, {"expires_at": {"$lt": now}}]},
                {"$set": {"owner": self.owner, "expires_at": now + self.ttl}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            return False  # held by someone else and not expired: the upsert collided
        return doc is not None and doc.get("owner") == self.owner

    async def release(self) -> None:
        await self.collection.delete_one({"_id": self.name, "owner": self.owner})


TimerHandler = Callable[[dict[str, Any]], Awaitable[None]]


class Timers:
    """Durable due-times: `schedule` stores one, `run` fires those that are due.

    A timer document: `{_id, kind, due_at, state: pending|done|cancelled, claimed_by,
    claimed_until, payload}`. `_id` is chosen by the caller so scheduling is idempotent.
    """

    def __init__(self, collection: AsyncCollection[dict[str, Any]], owner: str,
                 handlers: dict[str, TimerHandler] | None = None, *, claim_ttl_s: float = 30.0,
                 poll_interval_s: float = 1.0, clock: Callable[[], datetime] = _now):
        self.collection = collection
        self.owner = owner
        self.handlers = dict(handlers or {})
        self.claim_ttl = timedelta(seconds=claim_ttl_s)
        self.poll_interval_s = poll_interval_s
        self.clock = clock
        self._task: asyncio.Task[None] | None = None

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("state", 1), ("due_at", 1)])

    def on(self, kind: str, handler: TimerHandler) -> None:
        self.handlers[kind] = handler

    async def schedule(self, timer_id: str, kind: str, due_at: datetime, payload: dict[str, Any]) -> None:
        """Create or move a pending timer (idempotent by `timer_id`)."""
        await self.collection.update_one(
            {"_id": timer_id},
            {"$set": {"kind": kind, "due_at": due_at, "payload": payload, "state": "pending",
                      "claimed_until": datetime.fromtimestamp(0, UTC), "claimed_by": None}},
            upsert=True,
        )

    async def cancel(self, timer_id: str) -> None:
        await self.collection.update_one({"_id": timer_id, "state": "pending"},
                                         {"$set": {"state": "cancelled"}})

    async def claim_due(self) -> dict[str, Any] | None:
        now = self.clock()
        return await self.collection.find_one_and_update(
            {"state": "pending", "due_at": {"$lte": now}, "claimed_until": {"$lt": now}},
            {"$set": {"claimed_by": self.owner, "claimed_until": now + self.claim_ttl}},
            sort=[("due_at", 1)],
            return_document=ReturnDocument.AFTER,
        )

    async def fire_due(self) -> int:
        """Fire every timer that is due now; return how many fired."""
        fired = 0
        while (timer := await self.claim_due()) is not None:
            handler = self.handlers.get(timer["kind"])
            if handler is None:
                log.error("no handler for timer kind %s", timer["kind"])
                await self.collection.update_one({"_id": timer["_id"]}, {"$set": {"state": "orphaned"}})
                continue
            try:
                await handler(timer)
            except Exception:
                # Leave it claimed: it becomes due again when the claim expires.
                log.exception("timer %s failed; will retry after its claim expires", timer["_id"])
                continue
            await self.collection.update_one(
                {"_id": timer["_id"], "claimed_by": self.owner},
                {"$set": {"state": "done", "fired_at": self.clock(), "fired_by": self.owner}},
            )
            fired += 1
        return fired

    async def start(self) -> None:
        await self.ensure_indexes()
        self._task = asyncio.create_task(self._run(), name="timers")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            try:
                await self.fire_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("timer round failed")
            await asyncio.sleep(self.poll_interval_s)
