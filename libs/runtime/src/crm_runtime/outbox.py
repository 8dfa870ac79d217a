"""Transactional outbox without transactions: a state change and the events it causes are
one single-document write; a relay publishes them (acks=all) and then removes them.

Why a field and not a collection: FerretDB (and a sharded MongoDB without transactions)
can only make one document's write atomic. Each aggregate document therefore carries
`outbox: [...]` (the pending events, in order) and `outbox_pending: true`.

How the relay finds them: FerretDB 1.x with SQLite pushes down no filter but `{_id: x}`,
so a query for `outbox_pending: true` reads the whole collection. Writers therefore also
drop a marker `<collection>|<id>` in `outbox_markers` (before and after the write, so a
crash or a race between them leaves one); the relay reads the few markers, then each
marked document by `_id`. A sweep of the flags when a replica takes the relay lease
catches a marker lost to a crash.

Every write to such a document, the relay's included, goes through
`crm_runtime.revisions.write_revision`, which serialises the writers of one document (on
FerretDB too, whose updates are not atomic).

Delivery is at-least-once: a relay killed between publishing and removing publishes
again on restart, and consumers are idempotent on the event id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from crm_contracts.envelope import CloudEvent
from faststream.kafka import KafkaBroker
from opentelemetry import context as otel_context
from opentelemetry import propagate
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

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


MARKERS = "outbox_markers"


class Outbox:
    """Writes aggregate documents together with the events they cause."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], notify: Callable[[], None] | None = None):
        self.markers = db[MARKERS]
        self.notify = notify

    async def _mark(self, collection: AsyncCollection[dict[str, Any]], doc_id: Any) -> None:
        try:
            await self.markers.insert_one({"_id": f"{collection.name}|{doc_id}", "collection": collection.name,
                                           "doc_id": doc_id})
        except DuplicateKeyError:
            pass  # already marked: the relay will come

    async def insert(self, collection: AsyncCollection[dict[str, Any]], document: dict[str, Any],
                     events: Sequence[OutgoingEvent]) -> bool:
        """Insert a new aggregate with its events; False if its `_id` already exists."""
        if events:
            await self._mark(collection, document["_id"])
        try:
            await collection.insert_one(new_document_with_outbox(document, events))
        except DuplicateKeyError:
            return False
        await self._written(collection, document["_id"], events)
        return True

    async def update(self, collection: AsyncCollection[dict[str, Any]], doc_id: Any, rev: int,
                     update: dict[str, Any], events: Sequence[OutgoingEvent]) -> None:
        """Apply `update` and queue `events` in one write, if the document is still at `rev`
        (else `RevisionConflict`)."""
        if events:
            await self._mark(collection, doc_id)
        await write_revision(collection, doc_id, rev, with_outbox(update, events))
        await self._written(collection, doc_id, events)

    async def _written(self, collection: AsyncCollection[dict[str, Any]], doc_id: Any,
                       events: Sequence[OutgoingEvent]) -> None:
        if events:
            await self._mark(collection, doc_id)
            if self.notify:
                self.notify()


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
        concurrency: int = 32,
    ) -> None:
        self.broker = broker
        self.collections = {c.name: c for c in collections}
        self.markers = collections[0].database[MARKERS]
        self._swept = False
        self._sent: dict[str, None] = {}  # insertion-ordered: the oldest go first
        self.lease = lease
        self.poll_interval_s = poll_interval_s
        self.batch_size = batch_size
        self.concurrency = concurrency
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published = 0

    def notify(self) -> None:
        """Something was just written: relay now instead of at the next poll."""
        self._wake.set()

    async def start(self) -> None:
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
                    if not self._swept:
                        await self.sweep()
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

    async def sweep(self) -> int:
        """Re-mark every document with pending events: a full read, once per lease holder,
        for markers lost when a writer died between its write and its marker."""
        marked = 0
        for collection in self.collections.values():
            async for doc in collection.find({PENDING: True}, {"_id": 1}):
                await Outbox(collection.database)._mark(collection, doc["_id"])
                marked += 1
        self._swept = True
        return marked

    async def relay_once(self) -> int:
        """Publish the events of one batch of marked documents; return how many.

        The documents of a batch are relayed concurrently: each is a handful of store round
        trips and one produce, and they are independent (a marker per document, events in
        order within a document, keyed by their aggregate)."""
        markers = [m async for m in self.markers.find({}).limit(self.batch_size)]
        slots = asyncio.Semaphore(self.concurrency)

        async def relay_marked(marker: dict[str, Any]) -> int:
            async with slots:
                return await self._relay_marked(marker)

        results = await asyncio.gather(*(relay_marked(m) for m in markers), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]
        return sum(r for r in results if isinstance(r, int))

    async def _relay_marked(self, marker: dict[str, Any]) -> int:
        collection = self.collections.get(marker["collection"])
        if collection is None:
            return 0
        # Unmark first: a writer appending after this point marks the document again.
        await self.markers.delete_one({"_id": marker["_id"]})
        try:
            doc = await collection.find_one({"_id": marker["doc_id"]}, {OUTBOX: 1, REV: 1})
            return await self._relay_document(collection, doc) if doc is not None else 0
        except _RemovalPending:
            # Most likely the claim of a writer that died: it goes stale and is broken.
            await Outbox(collection.database)._mark(collection, marker["doc_id"])
            return 0
        except BaseException:
            await Outbox(collection.database)._mark(collection, marker["doc_id"])
            raise

    async def _relay_document(self, collection: AsyncCollection[dict[str, Any]], doc: dict[str, Any]) -> int:
        entries = doc.get(OUTBOX) or []
        if not entries:
            return 0
        # Events this relay already published, whose removal is waiting (for example on
        # the revision claim of a writer that died), are not sent again each round.
        to_send = [e for e in entries if e["id"] not in self._sent]
        futures = []
        for e in to_send:
            # Publish inside the trace that caused the event, so the trace runs on.
            token = otel_context.attach(propagate.extract({"traceparent": e.get("traceparent") or ""}))
            try:
                # Send all, then wait for all: the idempotent producer keeps their order per key.
                futures.append(await self.broker.publish(
                    e["value"].encode(), topic=e["topic"], key=e["key"].encode(),
                    headers=event_headers(), no_confirm=True,
                ))
            finally:
                otel_context.detach(token)
        await asyncio.gather(*futures)
        for e in to_send:
            self._sent[e["id"]] = None
        while len(self._sent) > 10_000:
            self._sent.pop(next(iter(self._sent)))
        if not await self._remove_published(collection, doc, {e["id"] for e in entries}):
            raise _RemovalPending(doc["_id"])
        for e in entries:
            self._sent.pop(e["id"], None)
        self.published += len(to_send)
        return len(to_send)

    async def _remove_published(self, collection: AsyncCollection[dict[str, Any]], doc: dict[str, Any],
                                sent: set[str]) -> bool:
        """Drop the published entries, keeping any appended since they were read."""
        for _ in range(5):
            remaining = [e for e in doc.get(OUTBOX) or [] if e["id"] not in sent]
            try:
                await write_revision(collection, doc["_id"], doc.get(REV, 0),
                                     {"$set": {OUTBOX: remaining, PENDING: bool(remaining)}})
                return True
            except RevisionConflict:
                fresh = await collection.find_one({"_id": doc["_id"]}, {OUTBOX: 1, REV: 1})
                if fresh is None:
                    return True
                doc = fresh
        return False


class _RemovalPending(Exception):
    """Published, but not yet removed from the document: marked again for the next round."""
