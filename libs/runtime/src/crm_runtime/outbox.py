"""Transactional outbox without transactions: a state change and the events it causes are
one single-document write; a relay publishes them (acks=all) and then removes them.

Why a field and not a collection: FerretDB (and a sharded MongoDB without transactions)
can only make one document's write atomic. Each aggregate document therefore carries
`outbox: [...]` (the pending events, in order) and `outbox_pending: true` (a scalar flag
the relay finds with an equality filter, which FerretDB pushes down to SQLite).

Every write to such a document, the relay's included, goes through
`crm_runtime.revisions.write_revision`, which serialises the writers of one document (on
FerretDB too, whose updates are not atomic).

Delivery is at-least-once: a relay killed between publishing and removing publishes
again on restart, and consumers are idempotent on the event id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from crm_contracts.envelope import CloudEvent
from faststream.kafka import KafkaBroker
from opentelemetry import context as otel_context
from opentelemetry import propagate
from pymongo.asynchronous.collection import AsyncCollection

from crm_runtime.kafka import encode_event, event_headers
from crm_runtime.leases import Lease
from crm_runtime.revisions import REV, RevisionConflict, write_revision
from crm_runtime.telemetry import current_traceparent

log = logging.getLogger(__name__)

PENDING = "outbox_pending"
OUTBOX = "outbox"


@dataclass(frozen=True)
class OutgoingEvent:
    topic: str
    event: CloudEvent


def outbox_entries(events: Iterable[OutgoingEvent]) -> list[dict[str, Any]]:
    """Serialise events for the outbox field, with the trace they were caused by."""
    traceparent = current_traceparent()
    return [
        {
            "id": e.event.id,
            "topic": e.topic,
            "key": e.event.subject,
            "value": encode_event(e.event).decode(),
            "traceparent": traceparent,
        }
        for e in events
    ]


def with_outbox(update: dict[str, Any], events: Sequence[OutgoingEvent]) -> dict[str, Any]:
    """Extend a MongoDB update document so the same write also queues `events`."""
    if not events:
        return update
    update = {k: dict(v) if isinstance(v, dict) else v for k, v in update.items()}
    update.setdefault("$push", {})[OUTBOX] = {"$each": outbox_entries(events)}
    update.setdefault("$set", {})[PENDING] = True
    return update


def new_document_with_outbox(document: dict[str, Any], events: Sequence[OutgoingEvent]) -> dict[str, Any]:
    """A document to insert, carrying the events its creation causes."""
    return {**document, OUTBOX: outbox_entries(events), PENDING: bool(events), REV: 0}


class OutboxRelay:
    """Publishes pending outbox events of some collections; one replica at a time (a lease).

    Only the lease holder relays, so two replicas do not publish the same event twice in
    the normal case; after a crash the next holder republishes what was not removed.
    """

    def __init__(
        self,
        broker: KafkaBroker,
        collections: Sequence[AsyncCollection[dict[str, Any]]],
        lease: Lease,
        *,
        poll_interval_s: float = 0.25,
        batch_size: int = 200,
    ) -> None:
        self.broker = broker
        self.collections = list(collections)
        self.lease = lease
        self.poll_interval_s = poll_interval_s
        self.batch_size = batch_size
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published = 0

    def notify(self) -> None:
        """Something was just written: relay now instead of at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        for collection in self.collections:
            await collection.create_index(PENDING)
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.lease.release()

    async def _run(self) -> None:
        while True:
            try:
                if await self.lease.acquire_or_renew():
                    while await self.relay_once():
                        await self.lease.acquire_or_renew()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay round failed; retrying")
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
            except TimeoutError:
                pass
            self._wake.clear()

    async def relay_once(self) -> int:
        """Publish one batch of pending documents; return how many events were published."""
        total = 0
        for collection in self.collections:
            cursor = collection.find({PENDING: True}, {OUTBOX: 1, REV: 1}).limit(self.batch_size)
            async for doc in cursor:
                total += await self._relay_document(collection, doc)
        return total

    async def _relay_document(self, collection: AsyncCollection[dict[str, Any]], doc: dict[str, Any]) -> int:
        entries = doc.get(OUTBOX) or []
        if entries:
            # Send all, then wait for all: the idempotent producer keeps their order per key.
            futures = []
            for e in entries:
                # Publish inside the trace that caused the event, so the trace runs on.
                token = otel_context.attach(propagate.extract({"traceparent": e.get("traceparent") or ""}))
                try:
                    futures.append(await self.broker.publish(
                        e["value"].encode(), topic=e["topic"], key=e["key"].encode(),
                        headers=event_headers(), no_confirm=True,
                    ))
                finally:
                    otel_context.detach(token)
            await asyncio.gather(*futures)
        await self._remove_published(collection, doc, {e["id"] for e in entries})
        self.published += len(entries)
        return len(entries)

    async def _remove_published(self, collection: AsyncCollection[dict[str, Any]], doc: dict[str, Any],
                                sent: set[str]) -> None:
        """Drop the published entries, keeping any appended since they were read."""
        for _ in range(20):
            remaining = [e for e in doc.get(OUTBOX) or [] if e["id"] not in sent]
            try:
                await write_revision(collection, doc["_id"], doc.get(REV, 0),
                                     {"$set": {OUTBOX: remaining, PENDING: bool(remaining)}})
                return
            except RevisionConflict:
                fresh = await collection.find_one({"_id": doc["_id"]}, {OUTBOX: 1, REV: 1})
                if fresh is None:
                    return
                doc = fresh
        log.warning("outbox of %s kept changing; its published events stay until the next round", doc["_id"])
