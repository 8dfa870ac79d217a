"""Leases and durable timers, for work that exactly one replica must do.

Both are claimed by *inserting* a document with a unique `_id`: the one write that is
atomic on FerretDB 1.x too (its conditional updates read, then write, so two replicas
can both "win" a `find_one_and_update`; a unique insert has exactly one winner).

A lease is held per time slot (`<name>@<slot>`, slot = now // ttl). The holder claims
the next slot in the second half of the current one, so it keeps the lease without a
gap; if it dies, nobody claims the next slot for it and another replica takes over at
the slot after its last, within two TTLs.

Timers (SLA clocks, survey due dates, send windows) are due-times in the database, so a
restart misses none. A due timer is claimed per claim window (`<timer>#<window>`): two
replicas never fire one in the same window, and a replica that died while firing leaves
it to be fired again in a later window. A firing handler must therefore be idempotent.
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

    def _slot(self, now: datetime) -> int:
        return int(now.timestamp() // self.ttl.total_seconds())

    async def _claim(self, slot: int) -> bool:
        try:
            await self.collection.insert_one({
                "_id": f"{self.name}@{slot}", "name": self.name, "slot": slot, "owner": self.owner,
                "expires_at": datetime.fromtimestamp((slot + 1) * self.ttl.total_seconds(), UTC),
            })
            return True
        except DuplicateKeyError:
            doc = await self.collection.find_one({"_id": f"{self.name}@{slot}"}, {"owner": 1})
            return doc is not None and doc.get("owner") == self.owner

    async def acquire_or_renew(self) -> bool:
        """True while this replica holds the lease; call it more often than every TTL/2."""
        now = self.clock()
        slot = self._slot(now)
        held = await self._claim(slot)
        ttl_s = self.ttl.total_seconds()
        if held and now.timestamp() - slot * ttl_s >= ttl_s / 2:
            await self._claim(slot + 1)
            await self.collection.delete_many({"name": self.name, "slot": {"$lt": slot - 2}})
        return held

    async def release(self) -> None:
        slot = self._slot(self.clock())
        await self.collection.delete_many({"name": self.name, "owner": self.owner, "slot": {"$gte": slot}})


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
        self.claims = collection.database[f"{collection.name}_claims"]
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

    async def due(self, limit: int = 100) -> list[dict[str, Any]]:
        now = self.clock()
        cursor = self.collection.find({"state": "pending", "due_at": {"$lte": now},
                                       "claimed_until": {"$lt": now}}).sort("due_at", 1).limit(limit)
        return [t async for t in cursor]

    async def claim(self, timer: dict[str, Any]) -> bool:
        """One winner per timer and claim window: a unique insert decides."""
        now = self.clock()
        window = int(now.timestamp() // self.claim_ttl.total_seconds())
        try:
            await self.claims.insert_one({"_id": f"{timer['_id']}#{window}", "timer_id": timer["_id"],
                                          "owner": self.owner, "at": now})
        except DuplicateKeyError:
            return False
        # The list we picked it from may be stale: fire only what is still pending.
        current = await self.collection.find_one({"_id": timer["_id"]}, {"state": 1, "due_at": 1})
        if current is None or current["state"] != "pending" or current["due_at"] > now:
            return False
        await self.collection.update_one(
            {"_id": timer["_id"]},
            {"$set": {"claimed_by": self.owner, "claimed_until": now + self.claim_ttl}})
        return True

    async def fire_due(self) -> int:
        """Fire every timer that is due now; return how many fired."""
        fired = 0
        for timer in await self.due():
            if not await self.claim(timer):
                continue
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
