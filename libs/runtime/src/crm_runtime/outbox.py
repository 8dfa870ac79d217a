"""Transactional outbox without transactions: a state change and the events it causes are
one single-document write; a relay publishes them (acks=all) and then removes them.

Why a field and not a collection: FerretDB (and a sharded MongoDB without transactions)
can only make one document's write atomic. Each aggregate document therefore carries
`outbox: [...]` (the pending events, in order) and `outbox_pending: true`.

How the relay finds them: FerretDB 1.x with SQLite pushes down no filter but `{_id: x}`,
so a query for `outbox_pending: true` reads the whole collection. Writers therefore also
drop a marker `<collection>|<id>` in `outbox_markers` before the write (an update marks
again after it, for a relay that read the document just before the write; an insert does
not need to: a relay that finds a young marker's document missing keeps the marker). The
relay reads a batch of markers, then the marked documents by `_id`. A sweep of the flags
when a replica takes the relay lease catches a marker lost to a crash.

The relay works a batch at a time (`relay_once`): unmark the batch, read its documents
(concurrent reads by `_id` on FerretDB, one `$in` on MongoDB), publish all their events
at once and wait for all (the idempotent producer keeps the order per key), then clear
them: the next revision of every document claimed in one insert, the cleared outboxes
written in a few bulk updates. A document whose claim is taken (a writer got there
first) is cleared through `write_revision` alone, or marked again for the next round.

Every write to such a document, the relay's included, claims its next revision
(`crm_runtime.revisions`), which serialises the writers of one document (on FerretDB too,
whose updates are not atomic).

What a process has just inserted with events it hands to its own relay (`crm_runtime.handoff`): the
document, its events and its revision 0, so the relay publishes them without reading the
document back. The marker path stays as it was (a crash loses only the handoff, and the
relay reads what it was not handed); a document written again meanwhile is caught by the
relay's claim of revision 1, which is then taken, and takes the path that reads it. A
document the relay found through its marker and published before its writer had handed it
over is known by its events, which the relay has sent: that handoff is dropped.

Delivery is at-least-once: a relay killed between publishing and clearing publishes
again on restart, and consumers are idempotent on the event id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from crm_contracts.envelope import CloudEvent
from faststream.kafka import KafkaBroker
from opentelemetry import context as otel_context
from opentelemetry import propagate
from pymongo import DeleteOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from crm_runtime import coalesce, handoff
from crm_runtime.batching import READ_CONCURRENCY, UPDATE_CHUNK, find_by_ids, insert_new, update_by_ids
from crm_runtime.kafka import encode_event, event_headers
from crm_runtime.leases import Lease
from crm_runtime.mongo import is_ferretdb
from crm_runtime.revisions import CLAIMS, REV, RevisionConflict, write_revision
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

# Store bounds (FerretDB 1.x; measured, see crm_runtime.batching): reads by `_id` run
# side by side up to batching.READ_CONCURRENCY, bulk writes carry at most
# batching.UPDATE_CHUNK statements and go one command after another (concurrent
# multi-statement commands were seen to exhaust FerretDB's 100 SQLite connections together
# and hang the server).
# A marker whose document is missing is kept this long: its writer marks first and inserts
# next, so the document may be on its way. Older, its writer died or its insert was refused.
MARKER_GRACE = timedelta(seconds=30)
# The ids of the events this relay sent, newest last: seconds' worth at full speed, far
# longer than a writer takes between its insert's answer and its handoff. (Evicted too
# soon, a late handoff is only published twice: consumers apply an event id once.)
SENT_KEPT = 100_000


def marker(collection_name: str, doc_id: Any, at: datetime | None = None) -> dict[str, Any]:
    return {"_id": f"{collection_name}|{doc_id}", "collection": collection_name, "doc_id": doc_id,
            "at": at or datetime.now(UTC)}


class Outbox:
    """Writes aggregate documents together with the events they cause."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], notify: Callable[[], None] | None = None):
        self.markers = db[MARKERS]
        self.notify = notify

    async def _mark(self, collection: AsyncCollection[dict[str, Any]], doc_id: Any, grouped: bool = False) -> None:
        if grouped:
            await coalesce.insert_if_new(self.markers, marker(collection.name, doc_id))
            return  # (False: already marked, the relay will come)
        try:
            await self.markers.insert_one(marker(collection.name, doc_id))
        except DuplicateKeyError:
            pass  # already marked: the relay will come

    async def insert(self, collection: AsyncCollection[dict[str, Any]], document: dict[str, Any],
                     events: Sequence[OutgoingEvent], *, grouped: bool = False) -> bool:
        """Insert a new aggregate with its events; False if its `_id` already exists.

        Two round trips: the marker, then the document. No second marker after it: a
        relay that unmarks and reads between the two finds the document missing and
        keeps the young marker (MARKER_GRACE). `grouped`: both inserts travel with those
        of concurrent callers (`crm_runtime.coalesce`), for a writer under bursts."""
        if events:
            await self._mark(collection, document["_id"], grouped)
        stored = new_document_with_outbox(document, events)
        if grouped:
            if not await coalesce.insert_if_new(collection, stored):
                return False
        else:
            try:
                await collection.insert_one(stored)
            except DuplicateKeyError:
                return False
        if events:
            handoff.hand(collection, {"_id": stored["_id"], OUTBOX: stored[OUTBOX], REV: 0})
            if self.notify:
                self.notify()
        return True

    async def update(self, collection: AsyncCollection[dict[str, Any]], doc_id: Any, rev: int,
                     update: dict[str, Any], events: Sequence[OutgoingEvent]) -> None:
        """Apply `update` and queue `events` in one write, if the document is still at `rev`
        (else `RevisionConflict`)."""
        handoff.drop(collection, doc_id)  # no longer as inserted: the relay reads it
        if events:
            await self._mark(collection, doc_id)
        await write_revision(collection, doc_id, rev, with_outbox(update, events))
        if events:
            # A relay may have unmarked and read the document just before this write.
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
        batch_size: int = 500,
        concurrency: int = READ_CONCURRENCY,
    ) -> None:
        self.broker = broker
        self.collections = {c.name: c for c in collections}
        self.db = collections[0].database
        self.markers = self.db[MARKERS]
        self._swept = False
        self._sent: dict[str, None] = {}  # insertion-ordered: the oldest go first
        self.lease = lease
        self.poll_interval_s = poll_interval_s
        self.batch_size = batch_size
        self.concurrency = concurrency
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published = 0
        self.handed = 0  # documents published without reading them (the handoff)

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
                if not await self.lease.acquire_or_renew():
                    # Another replica relays: what this one was handed goes stale meanwhile.
                    for collection in self.collections.values():
                        handoff.clear(collection)
                else:
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
        for markers lost when a relay or a writer died between unmarking and clearing."""
        marked = 0
        for collection in self.collections.values():
            ids = [doc["_id"] async for doc in collection.find({PENDING: True}, {"_id": 1})]
            for start in range(0, len(ids), self.batch_size):
                await self._remark([marker(collection.name, i) for i in ids[start:start + self.batch_size]])
            marked += len(ids)
        self._swept = True
        return marked

    async def _remark(self, markers: Sequence[dict[str, Any]]) -> None:
        await insert_new(self.markers, markers)

    async def relay_once(self) -> int:
        """Publish the events of one batch of marked documents and clear them; return how
        many events were published."""
        markers = [m async for m in self.markers.find({}).limit(self.batch_size).batch_size(self.batch_size)]
        if not markers:
            return 0
        ferret = await is_ferretdb(self.db.client)
        # Unmark first: a writer appending from here on marks the document again.
        if ferret:  # by `_id` (a `$in` reads the whole collection), one command at a time
            deletes = [DeleteOne({"_id": m["_id"]}) for m in markers]
            for start in range(0, len(deletes), UPDATE_CHUNK):
                await self.markers.bulk_write(deletes[start:start + UPDATE_CHUNK], ordered=False)
        else:
            await self.markers.delete_many({"_id": {"$in": [m["_id"] for m in markers]}})
        published = 0
        for name in dict.fromkeys(m.get("collection") for m in markers):
            collection = self.collections.get(name) if isinstance(name, str) else None
            of_collection = [m for m in markers if m.get("collection") == name]
            if collection is None:
                continue  # not ours (another service's relay shares no database; a stray marker)
            try:
                published += await self._relay_batch(collection, of_collection, ferret)
            except BaseException:
                await self._remark(of_collection)
                raise
        return published

    async def _read(self, collection: AsyncCollection[dict[str, Any]], ids: list[Any],
                    ferret: bool) -> dict[Any, dict[str, Any]]:
        """The documents (their outbox and revision): those this process just inserted from
        the handoff, the others read."""
        handed = handoff.take(collection, ids)
        # Handed after this relay had already read it from the store and sent its events
        # (the writer resumed late): stale, since the relay cleared it. Read it instead.
        for doc_id in [i for i, d in handed.items() if all(e["id"] in self._sent for e in d[OUTBOX])]:
            del handed[doc_id]
        self.handed += len(handed)
        read = await find_by_ids(collection, [i for i in ids if i not in handed], {OUTBOX: 1, REV: 1},
                                 concurrency=self.concurrency)
        return {**read, **handed}

    async def _relay_batch(self, collection: AsyncCollection[dict[str, Any]], markers: list[dict[str, Any]],
                           ferret: bool) -> int:
        ids = list(dict.fromkeys(m["doc_id"] for m in markers))
        docs = await self._read(collection, ids, ferret)
        now = datetime.now(UTC)
        # A young marker of a missing document: its writer marks, then inserts.
        waiting = [m for m in markers if m["doc_id"] not in docs and _aware(m.get("at")) > now - MARKER_GRACE]
        await self._remark(waiting)
        with_events = [d for d in docs.values() if d.get(OUTBOX)]
        sent = await self._publish([e for d in with_events for e in d[OUTBOX]])
        conflicted = await self._clear(collection, with_events, ferret)
        # Cleared by someone else's revision first: one at a time, through write_revision.
        slots = asyncio.Semaphore(self.concurrency)

        async def clear_alone(doc: dict[str, Any]) -> dict[str, Any] | None:
            async with slots:
                return None if await self._remove_published(collection, doc) else doc

        left = [d for d in await asyncio.gather(*(clear_alone(d) for d in conflicted)) if d is not None]
        # Their events are published: `_sent` keeps them from being sent again next round,
        # and keeps a late handoff of a cleared document from sending them again (`_read`).
        await self._remark([marker(collection.name, d["_id"]) for d in left])
        self.published += sent
        return sent

    async def _publish(self, entries: list[dict[str, Any]]) -> int:
        """Send every entry not sent already, then wait for all of their acks."""
        to_send = [e for e in entries if e["id"] not in self._sent]
        futures = []
        for e in to_send:
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
        for e in to_send:
            self._sent[e["id"]] = None
        while len(self._sent) > SENT_KEPT:
            self._sent.pop(next(iter(self._sent)))
        return len(to_send)

    async def _clear(self, collection: AsyncCollection[dict[str, Any]], docs: list[dict[str, Any]],
                     ferret: bool) -> list[dict[str, Any]]:
        """Empty the outbox of each document (all its entries are published) in bulk, each
        under a claim on its next revision; returns the documents whose claim was taken."""
        if not docs:
            return []
        now = datetime.now(UTC)
        claims = [{"_id": f"{collection.name}/{d['_id']}@{d.get(REV, 0) + 1}", "at": now} for d in docs]
        taken = await insert_new(self.db[CLAIMS], claims)
        ours = [d for d, c in zip(docs, claims, strict=True) if c["_id"] not in taken]
        # The claim is the guard, as in write_revision: no writer writes revision rev+1
        # without holding it. (A `rev` in the filter would read the table on FerretDB.)
        await update_by_ids(collection, [(d["_id"], {"$set": {OUTBOX: [], PENDING: False, REV: d.get(REV, 0) + 1}})
                                         for d in ours])
        return [d for d, c in zip(docs, claims, strict=True) if c["_id"] in taken]

    async def _remove_published(self, collection: AsyncCollection[dict[str, Any]], doc: dict[str, Any]) -> bool:
        """Drop the published entries of one document, keeping any appended since they
        were read; False when writers kept it busy."""
        sent = {e["id"] for e in doc.get(OUTBOX) or []}
        for _ in range(5):
            remaining = [e for e in doc.get(OUTBOX) or [] if e["id"] not in sent]
            try:
                await write_revision(collection, doc["_id"], doc.get(REV, 0),
                                     {"$set": {OUTBOX: remaining, PENDING: bool(remaining)}})
                if remaining:  # appended meanwhile: the next round publishes them
                    await self._remark([marker(collection.name, doc["_id"])])
                return True
            except RevisionConflict:
                fresh = await collection.find_one({"_id": doc["_id"]}, {OUTBOX: 1, REV: 1})
                if fresh is None:
                    return True
                doc = fresh
        return False


def _aware(at: Any) -> datetime:
    """A marker's time (markers written without one count as old)."""
    if not isinstance(at, datetime):
        return datetime.min.replace(tzinfo=UTC)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
