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
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from crm_runtime.slots import SlotIndex

log = logging.getLogger(__name__)


def replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


class Lease:
    def __init__(self, collection: AsyncCollection[dict[str, Any]], name: str, owner: str,
                 ttl_s: float = 10.0, clock: Callable[[], datetime] = _now):
        self.collection = collection
        self.name = name
        self.owner = owner
        self.ttl = timedelta(seconds=ttl_s)
        self.clock = clock
        # Slots this replica claimed: a slot once claimed stays ours, so asking the store
        # again (on every relay wake-up, say) would only cost round trips.
        self._held: set[int] = set()

    def _slot(self, now: datetime) -> int:
        return int(now.timestamp() // self.ttl.total_seconds())

    async def _claim(self, slot: int) -> bool:
        if slot in self._held:
            return True
        try:
            await self.collection.insert_one({
                "_id": f"{self.name}@{slot}", "name": self.name, "slot": slot, "owner": self.owner,
                "expires_at": datetime.fromtimestamp((slot + 1) * self.ttl.total_seconds(), UTC),
            })
        except DuplicateKeyError:
            doc = await self.collection.find_one({"_id": f"{self.name}@{slot}"}, {"owner": 1})
            if doc is None or doc.get("owner") != self.owner:
                return False
        self._held = {s for s in self._held if s >= slot - 1} | {slot}
        return True

    async def acquire_or_renew(self) -> bool:
        """True while this replica holds the lease; call it more often than every TTL/2."""
        now = self.clock()
        slot = self._slot(now)
        held = await self._claim(slot)
        ttl_s = self.ttl.total_seconds()
        if held and now.timestamp() - slot * ttl_s >= ttl_s / 2 and slot + 1 not in self._held:
            await self._claim(slot + 1)
            await self.collection.delete_many({"name": self.name, "slot": {"$lt": slot - 2}})
        return held

    async def release(self) -> None:
        slot = self._slot(self.clock())
        self._held.clear()
        await self.collection.delete_many({"name": self.name, "owner": self.owner, "slot": {"$gte": slot}})


TimerHandler = Callable[[dict[str, Any]], Awaitable[None]]


class Timers:
    """Durable due-times: `schedule` stores one, `fire_due` fires those that are due.

    A timer document `{_id, kind, due_at, payload, state: pending|done|cancelled, bucket}`;
    `_id` is chosen by the caller, so scheduling is idempotent and moving a timer is
    scheduling it again.

    Finding the due ones reads only by `_id` (FerretDB/SQLite pushes down no other filter,
    and a query on `due_at` would read every timer of every case). Each timer is entered
    in the index of its minute (`<minute>#<n>`, n from a per-minute counter); the poller
    walks the minutes from a cursor to now and moves the cursor past a minute only once
    every timer entered there is settled (fired, cancelled or moved), so a timer whose
    firing failed, or whose claimer died, is tried again.
    """

    BUCKET_S = 60

    def __init__(self, collection: AsyncCollection[dict[str, Any]], owner: str,
                 handlers: dict[str, TimerHandler] | None = None, *, claim_ttl_s: float = 30.0,
                 poll_interval_s: float = 1.0, clock: Callable[[], datetime] = _now):
        self.collection = collection
        self.claims = collection.database[f"{collection.name}_claims"]
        self.index = collection.database[f"{collection.name}_index"]
        self.slots = SlotIndex(self.index)
        self.owner = owner
        self.handlers = dict(handlers or {})
        self.claim_ttl = timedelta(seconds=claim_ttl_s)
        self.poll_interval_s = poll_interval_s
        self.clock = clock
        self._task: asyncio.Task[None] | None = None

    async def ensure_indexes(self) -> None:
        """Timers are read by `_id` only."""

    def on(self, kind: str, handler: TimerHandler) -> None:
        self.handlers[kind] = handler

    def _bucket(self, at: datetime) -> int:
        return int(at.timestamp() // self.BUCKET_S)

    async def schedule(self, timer_id: str, kind: str, due_at: datetime, payload: dict[str, Any]) -> None:
        """Create or move a pending timer (idempotent by `timer_id`)."""
        bucket = max(self._bucket(due_at), self._bucket(self.clock()))
        existing = await self.collection.find_one({"_id": timer_id}, {"bucket": 1, "state": 1, "due_at": 1})
        await self.collection.update_one(
            {"_id": timer_id},
            {"$set": {"kind": kind, "due_at": due_at, "payload": payload, "state": "pending", "bucket": bucket}},
            upsert=True,
        )
        if existing is None or existing.get("bucket") != bucket or existing.get("state") != "pending":
            await self._enter(bucket, timer_id)

    async def _enter(self, bucket: int, timer_id: str) -> None:
        await self.slots.add(str(bucket), timer_id)

    async def cancel(self, timer_id: str) -> None:
        timer = await self.collection.find_one({"_id": timer_id}, {"state": 1})
        if timer is not None and timer["state"] == "pending":
            await self.collection.update_one({"_id": timer_id}, {"$set": {"state": "cancelled"}})

    async def _entries(self, bucket: int) -> list[str]:
        return [str(v) for v in await self.slots.members(str(bucket))]

    async def due(self) -> tuple[list[dict[str, Any]], int]:
        """Pending timers due now, and the first minute that still has unsettled timers."""
        now = self.clock()
        cursor_doc = await self.index.find_one({"_id": "cursor"})
        start = int(cursor_doc["bucket"]) if cursor_doc else self._bucket(now) - 24 * 60
        first_unsettled = self._bucket(now)
        due: list[dict[str, Any]] = []
        for bucket in range(start, self._bucket(now) + 1):
            for timer_id in await self._entries(bucket):
                timer = await self.collection.find_one({"_id": timer_id})
                if timer is None or timer["state"] != "pending" or timer.get("bucket") != bucket:
                    continue  # settled, or moved to another minute
                first_unsettled = min(first_unsettled, bucket)
                if timer["due_at"] <= now:
                    due.append(timer)
        return due, first_unsettled

    async def claim(self, timer: dict[str, Any]) -> bool:
        """One winner per timer and claim window: a unique insert decides."""
        now = self.clock()
        window = int(now.timestamp() // self.claim_ttl.total_seconds())
        try:
            await self.claims.insert_one({"_id": f"{timer['_id']}#{window}", "timer_id": timer["_id"],
                                          "owner": self.owner, "at": now})
        except DuplicateKeyError:
            return False
        # Windows are aligned to the clock, so a claim made just before a window ends would
        # protect its firing for a moment only: a claim of the previous window younger than
        # the TTL still holds the timer (its holder may be firing it right now).
        previous = await self.claims.find_one({"_id": f"{timer['_id']}#{window - 1}"}, {"at": 1})
        if previous is not None and _aware(previous["at"]) > now - self.claim_ttl:
            return False
        # The list we picked it from may be stale: fire only what is still pending.
        current = await self.collection.find_one({"_id": timer["_id"]}, {"state": 1, "due_at": 1})
        return current is not None and current["state"] == "pending" and current["due_at"] <= now

    async def fire_due(self) -> int:
        """Fire every timer that is due now; return how many fired."""
        fired = 0
        due, first_unsettled = await self.due()
        for timer in due:
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
                # Still pending: it is tried again in the next claim window.
                log.exception("timer %s failed; it will be tried again", timer["_id"])
                continue
            await self.collection.update_one(
                {"_id": timer["_id"]},
                {"$set": {"state": "done", "fired_at": self.clock(), "fired_by": self.owner}},
            )
            fired += 1
        await self.index.update_one({"_id": "cursor"}, {"$set": {"bucket": first_unsettled}}, upsert=True)
        return fired

    async def start(self) -> None:
        await self.ensure_indexes()
        # A new store starts its cursor now: no timer can have been entered in an earlier
        # minute, since every replica starts its poller before it schedules anything.
        # Without it the first poll would probe a whole day of empty minutes.
        with contextlib.suppress(DuplicateKeyError):
            await self.index.insert_one({"_id": "cursor", "bucket": self._bucket(self.clock())})
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
