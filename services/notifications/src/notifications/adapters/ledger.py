"""The send ledger: one document per (cause, recipient, channel), inserted before the
provider is called, so a redelivered cause or a restarted replica finds it and sends
nothing twice. Its `_id` is the provider's client reference (the SMS OutId).

Status changes go through revision claims (several writers: the dispatcher, receipts,
staff cancelling) and carry their delivery events in the same write (the outbox).
Broadcasts keep their members in chunk documents; a chunk's tallies are recounted from
its members' statuses, so progress counts each accepted send exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from crm_runtime.batching import insert_new
from crm_runtime.outbox import MARKERS, Outbox, OutgoingEvent, new_document_with_outbox
from crm_runtime.revisions import CLAIMS, KEEP_CLAIMS, REV, RevisionConflict
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from notifications.adapters.store import bulk_update

LEDGER = "ledger"
LEDGER_INDEX = "ledger_index"
# A batch's delivery events in one document: the relay then reads and clears one
# document per batch instead of one per message.
LEDGER_EVENTS = "ledger_events"
BROADCASTS = "broadcasts"
CHUNKS = "broadcast_chunks"
STALE_CHUNKS = "broadcast_stale_chunks"
CHUNK_SIZE = 500
# A chunk keeps its members as planned, so the sender need not read each entry. Trusted
# only while every later write's revision claim is surely still kept (claims stay a day):
# a member written since then loses its claim and takes the one-message path, which reads it.
SNAPSHOT_TRUSTED = KEEP_CLAIMS - timedelta(hours=4)
GROUP_STATEMENTS = 25
# The events a state change causes, fixed or computed from the document as it was.
EventsFor = list[OutgoingEvent] | Callable[[dict[str, Any]], list[OutgoingEvent]]


def message_id(cause_key: str, recipient: str, channel: str) -> str:
    """Deterministic, short and free of personal data: fits a provider's client reference."""
    digest = hashlib.sha256(f"{cause_key}|{recipient}|{channel}".encode()).hexdigest()[:28]
    return f"m{digest}"


def _snapshot(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("outbox", "outbox_pending")}


class Ledger:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], outbox: Outbox):
        self.collection = db[LEDGER]
        self.index = db[LEDGER_INDEX]
        self.broadcasts = db[BROADCASTS]
        self.chunks = db[CHUNKS]
        self.stale = db[STALE_CHUNKS]
        self.markers = db[MARKERS]
        self.claims = db[CLAIMS]
        self.events = db[LEDGER_EVENTS]
        self.outbox = outbox
        self._bulk_lock = asyncio.Lock()

    async def get(self, mid: str) -> dict[str, Any] | None:
        # No projection: on FerretDB 1.x excluding a field made this read 3x slower.
        doc = await self.collection.find_one({"_id": mid})
        if doc is not None:
            doc.pop("outbox", None)
        return doc

    async def get_many(self, ids: Iterable[str], concurrency: int = 64) -> list[dict[str, Any]]:
        ids = list(ids)
        out: list[dict[str, Any]] = []
        for start in range(0, len(ids), concurrency):
            docs = await asyncio.gather(*(self.get(i) for i in ids[start:start + concurrency]))
            out += [d for d in docs if d]
        return out

    async def insert(self, doc: dict[str, Any], events: list[OutgoingEvent]) -> bool:
        """The unique insert that decides: False when this message exists already."""
        created = await self.outbox.insert(self.collection, doc, events)
        if created and doc.get("customer_id"):
            await self.index.update_one({"_id": f"hist:{doc['customer_id']}"}, {"$addToSet": {"ids": doc["_id"]}},
                                        upsert=True)
        return created

    async def transition(self, mid: str, allowed_from: Iterable[str], change: dict[str, Any],
                         events: EventsFor | None = None, note: str | None = None,
                         current: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Move a message to a new state if it is in one of `allowed_from`; the document after,
        or None when it was not (someone else moved it first: a repeat does nothing).
        `current`, the document as the caller just read it, saves a read; the revision claim
        still refuses it if it is stale."""
        allowed = set(allowed_from)
        for attempt in range(30):
            doc = current if attempt == 0 and current is not None else await self.get(mid)
            if doc is None or doc.get("status") not in allowed:
                return None
            now = datetime.now(UTC)
            entry = {"at": now, "status": change.get("status", doc["status"]), "note": note}
            update = {"$set": {**change, "updated_at": now}, "$push": {"trail": entry}}
            try:
                out = events(doc) if callable(events) else (events or [])
                await self.outbox.update(self.collection, mid, int(doc.get(REV, 0)), update, out)
            except RevisionConflict:
                continue
            return {**doc, **change, REV: int(doc.get(REV, 0)) + 1}
        raise RevisionConflict(mid)

    async def transition_many(self, docs: list[dict[str, Any]], allowed_from: Iterable[str],
                              change: Callable[[dict[str, Any]], dict[str, Any]], note: str | None = None
                              ) -> list[dict[str, Any]]:
        """`transition` for many documents as just read, in a few round trips: the revision
        claims (`write_revision`'s, same ids) in one insert, the updates by `_id` in
        bulks. Returns the documents after, for those whose claim was won; a
        lost claim (someone moved it, or a dead writer's claim) is the caller's to retry
        one by one. The re-read `write_revision` makes after claiming is skipped: the claim
        of rev+1 alone refuses a stale read, since every writer claims and claims stay a day."""
        allowed = set(allowed_from)
        now = datetime.now(UTC)
        todo = [d for d in docs if d.get("status") in allowed]
        claim_of = {d["_id"]: f"{LEDGER}/{d['_id']}@{int(d.get(REV, 0)) + 1}" for d in todo}
        lost = set(await insert_new(self.claims, [{"_id": c, "at": now} for c in claim_of.values()]))
        won = [d for d in todo if claim_of[d["_id"]] not in lost]
        after: list[dict[str, Any]] = []
        updates: list[UpdateOne] = []
        for d in won:
            fields, rev = change(d), int(d.get(REV, 0)) + 1
            entry = {"at": now, "status": fields.get("status", d["status"]), "note": note}
            updates.append(UpdateOne({"_id": d["_id"]}, {"$set": {**fields, "updated_at": now, REV: rev},
                                                         "$push": {"trail": entry}}))
            after.append({**d, **fields, REV: rev})
        # One bulk at a time per process: concurrent bulk_writes to one collection were
        # seen to hang FerretDB 1.x (the benchmark stopped, every bulk awaiting its reply).
        # A group's marks (at most a tenth of a second of the rate, 20 at the defaults) in one
        # command: far from the hang at ~100 statements, one at a time, as crm_runtime.batching's
        # UPDATE_CHUNK; half the commands of ten a command, on the path that sets the pace.
        async with self._bulk_lock:
            await bulk_update(self.collection, updates, statements=GROUP_STATEMENTS)
        return after

    async def add_events(self, key: str, events: list[OutgoingEvent]) -> None:
        """Queue delivery events of a batch (one outbox document, `key` unique per batch)."""
        if events:
            await self.outbox.insert(self.events, {"_id": key, "at": datetime.now(UTC)}, events)

    async def set_counts(self, bid: str, n: int, counts: dict[str, int]) -> None:
        await self.chunks.update_one({"_id": f"{bid}#{n}"}, {"$set": {"counts": counts}})

    async def customer_history(self, customer_id: str, broadcast_ids: list[str]) -> list[dict[str, Any]]:
        """A customer's own messages plus what broadcasts to their buildings sent them."""
        doc = await self.index.find_one({"_id": f"hist:{customer_id}"})
        ids = list(doc.get("ids", [])) if doc else []
        ids += [message_id(b, customer_id, ch) for b in broadcast_ids for ch in ("sms", "email", "letter")]
        docs = await self.get_many(dict.fromkeys(ids))
        return sorted(docs, key=lambda d: d.get("created_at") or datetime.min.replace(tzinfo=UTC), reverse=True)

    # -- broadcasts --------------------------------------------------------------------------

    async def create_broadcast(self, broadcast: dict[str, Any], members: list[dict[str, Any]]) -> bool:
        """Store a broadcast's messages (in chunks) and then the broadcast itself; a repeat
        (the cause event redelivered) inserts nothing new. False if it existed already."""
        if await self.broadcasts.find_one({"_id": broadcast["_id"]}, {"_id": 1}):
            return False
        docs = [new_document_with_outbox(m, m.pop("_events", [])) for m in members]
        for start in range(0, len(docs), CHUNK_SIZE):
            part = docs[start:start + CHUNK_SIZE]
            for d in part:
                d["chunk"] = start // CHUNK_SIZE
            await insert_new(self.collection, part)
            marked = [{"_id": f"{LEDGER}|{d['_id']}", "collection": LEDGER, "doc_id": d["_id"]}
                      for d in part if d.get("outbox_pending")]
            await insert_new(self.markers, marked)
        # Wall-clock time, as the claims' own (a service's clock may be set for a test).
        snapshot_at = datetime.now(UTC)
        chunk_docs = [{"_id": f"{broadcast['_id']}#{n}", "ids": [d["_id"] for d in docs[s:s + CHUNK_SIZE]],
                       "members": [_snapshot(d) for d in docs[s:s + CHUNK_SIZE]], "snapshot_at": snapshot_at,
                       "counts": {}, REV: 0}
                      for n, s in enumerate(range(0, len(docs), CHUNK_SIZE))]
        await insert_new(self.chunks, chunk_docs)
        scope = broadcast.get("building") or "*"
        key = f"bcasts:{broadcast['project']}|{scope}" if broadcast.get("project") else f"bcasts:@{broadcast['region']}"
        await self.index.update_one({"_id": key},
                                    {"$addToSet": {"ids": broadcast["_id"]}}, upsert=True)
        await insert_new(self.broadcasts, [{**broadcast, "chunks": len(chunk_docs), REV: 0}])
        if docs:
            self.outbox.notify and self.outbox.notify()
        return True

    async def broadcast(self, bid: str) -> dict[str, Any] | None:
        return await self.broadcasts.find_one({"_id": bid})

    async def broadcasts_for(self, units: list[tuple[str, str]], region: str | None = None) -> list[str]:
        """Broadcasts that reached these homes: to their buildings, projects, or (an owner) region."""
        keys = {f"bcasts:{p}|{b}" for p, b in units} | {f"bcasts:{p}|*" for p, _ in units}
        if units and region:
            keys.add(f"bcasts:@{region}")
        docs = await asyncio.gather(*(self.index.find_one({"_id": k}) for k in sorted(keys)))
        return [i for d in docs if d for i in d.get("ids", [])]

    async def chunk(self, bid: str, n: int) -> dict[str, Any] | None:
        return await self.chunks.find_one({"_id": f"{bid}#{n}"})

    async def chunk_members(self, bid: str, n: int) -> tuple[list[str], dict[str, dict[str, Any]]]:
        """A chunk's member ids, and the members as planned while that copy may be trusted
        (else none: the sender reads them)."""
        chunk = await self.chunk(bid, n)
        if chunk is None:
            return [], {}
        ids = list(chunk.get("ids", []))
        at = chunk.get("snapshot_at")
        if at is None or datetime.now(UTC) - (at if at.tzinfo else at.replace(tzinfo=UTC)) > SNAPSHOT_TRUSTED:
            return ids, {}
        return ids, {m["_id"]: m for m in chunk.get("members", [])}

    async def chunk_counts(self, bid: str, n: int) -> dict[str, Any] | None:
        # Inclusion only (the members are most of a chunk's size).
        return await self.chunks.find_one({"_id": f"{bid}#{n}"}, {"counts": 1})

    async def recount_chunk(self, bid: str, n: int) -> dict[str, int]:
        """Tally a chunk from its members' statuses: exact, and safe to repeat."""
        chunk = await self.chunk(bid, n)
        if chunk is None:
            return {}
        counts: dict[str, int] = {}
        for doc in await self.get_many(chunk["ids"]):
            counts[doc["status"]] = counts.get(doc["status"], 0) + 1
        await self.chunks.update_one({"_id": chunk["_id"]}, {"$set": {"counts": counts}})
        return counts

    async def mark_stale(self, bid: str, n: int) -> None:
        """A member of the chunk changed outside the runner (a receipt, a retry): the runner
        recounts it soon. A marker per chunk (a unique insert), so a receipt storm costs one
        recount per chunk, not one per receipt."""
        with contextlib.suppress(DuplicateKeyError):
            await self.stale.insert_one({"_id": f"{bid}#{n}", "bid": bid, "n": n})

    async def recount_stale(self) -> int:
        recounted = 0
        async for marker in self.stale.find({}).limit(200):
            await self.stale.delete_one({"_id": marker["_id"]})  # first: a change after this marks it again
            await self.recount_chunk(marker["bid"], int(marker["n"]))
            recounted += 1
        return recounted

    async def progress(self, bid: str) -> dict[str, Any] | None:
        b = await self.broadcast(bid)
        if b is None:
            return None
        chunks = await asyncio.gather(*(self.chunk_counts(bid, n) for n in range(int(b.get("chunks", 0)))))
        counts: dict[str, int] = {}
        for c in chunks:
            for status, k in ((c or {}).get("counts") or {}).items():
                counts[status] = counts.get(status, 0) + k
        return {**b, "counts": counts}

    async def set_broadcast(self, bid: str, fields: dict[str, Any]) -> None:
        await bulk_update(self.broadcasts, [UpdateOne({"_id": bid}, {"$set": fields})])
