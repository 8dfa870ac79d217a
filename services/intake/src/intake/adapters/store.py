"""Intake's MongoDB repositories: contacts (with their outbox) and the customer directory.

Every hot read is by `_id`: FerretDB 1.x with SQLite pushes down no other filter, so a
query on any other field reads the whole collection. Hence the shapes below: a document
per directory key (`_id` = `phone:138…`), and per customer the contacts of the last day
(`_id` = customer id), instead of queries on `key` or `customer_id`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from crm_contracts.events.intake import ContactReceived
from crm_runtime import coalesce
from crm_runtime.batching import insert_new as insert_bulk
from crm_runtime.batching import update_by_ids
from crm_runtime.outbox import Outbox, OutgoingEvent
from crm_runtime.revisions import REV, RevisionConflict, write_revision
from crm_runtime.rmw import read_modify_write
from pymongo.asynchronous.database import AsyncDatabase

from intake.domain.contacts import DUPLICATE_WINDOW, EarlierContact
from intake.domain.customers import DirectoryEntry, key_often_shared, newest_per_customer, supersedes

log = logging.getLogger(__name__)

CONTACTS = "contacts"
CUSTOMERS = "customers"
CUSTOMER_KEYS = "customer_keys"
RECENT = "recent_contacts"
# Stored with a contact for intake's own use, never shown: the text duplicates are folded
# on, the client's key, and the outbox.
_INTERNAL = ("normalised_text", "idempotency_key", "outbox_pending")


class MongoContactStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], outbox: Outbox):
        self.collection = db[CONTACTS]
        self.recent = db[RECENT]
        self.outbox = outbox
        # The recent-contacts document each request just read, for its write that follows:
        # that write checks the revision anyway, so reading it again would only cost a trip.
        self._recent_read: dict[str, dict[str, Any] | None] = {}

    async def get(self, contact_id: str) -> dict[str, Any] | None:
        """The contact as staff see it: `contact_id`, and none of the fields above."""
        doc = await self.collection.find_one({"_id": contact_id}, {"outbox": 0})
        if doc is None:
            return None
        doc["contact_id"] = doc.pop("_id")
        for key in _INTERNAL:
            doc.pop(key, None)
        return doc

    def _remember_read(self, customer_id: str, doc: dict[str, Any] | None) -> None:
        if len(self._recent_read) >= 1000:  # requests that failed before writing
            self._recent_read.clear()
        self._recent_read[customer_id] = doc

    def first_of_customer(self, customer_id: str) -> None:
        # Its recent-contacts document does not exist: the write that follows inserts it
        # (and retries as an update if a concurrent contact of the customer got there first).
        self._remember_read(customer_id, None)

    async def recent_for_customer(self, customer_id: str, since: datetime) -> list[EarlierContact]:
        if customer_id in self._recent_read and self._recent_read[customer_id] is None:
            return []  # known to have none (first_of_customer)
        doc = await self.recent.find_one({"_id": customer_id})
        self._remember_read(customer_id, doc)
        return [
            EarlierContact(c["contact_id"], c["received_at"], c["text"], c.get("duplicate_of"))
            for c in (doc or {}).get("contacts", [])
            if c["received_at"] >= since
        ]

    async def insert(self, data: ContactReceived, events: list[OutgoingEvent], *, normalised_text: str,
                     idempotency_key: str | None) -> bool:
        """Store the contact and its events in one write; False if it already exists.
        `reply_to` is not kept: the provisional customer's directory entry holds it."""
        contact = {"_id": data.contact_id, **data.model_dump(mode="python", exclude={"contact_id", "reply_to"}),
                   "normalised_text": normalised_text, "idempotency_key": idempotency_key}
        # Grouped with the inserts of concurrent requests: a burst's contacts and markers
        # travel to the store a command for many (each answered once its own is stored).
        if not await self.outbox.insert(self.collection, contact, events, grouped=True):
            return False
        if contact.get("customer_id"):
            await self._remember_recent(contact)
        return True

    async def _remember_recent(self, contact: dict[str, Any]) -> None:
        """Add the contact to its customer's last day. Two contacts of one caller can arrive
        at once (a burst, two channels), so the list is written through a revision claim;
        it only serves near-duplicate marking, so giving up never fails the contact, which
        is stored with its event already."""
        customer_id = contact["customer_id"]
        keep_from = contact["received_at"] - DUPLICATE_WINDOW
        entry = {"contact_id": contact["_id"], "received_at": contact["received_at"],
                 "text": contact["normalised_text"], "duplicate_of": contact.get("duplicate_of")}
        cached = [self._recent_read.pop(customer_id)] if customer_id in self._recent_read else []

        async def load() -> tuple[dict[str, Any], int] | None:
            # The near-duplicate check has just read this document: the first round reuses it.
            doc = cached.pop() if cached else await self.recent.find_one({"_id": customer_id})
            return (doc, int(doc.get(REV, 0))) if doc is not None else None

        def change(doc: dict[str, Any] | None) -> list[dict[str, Any]]:
            kept = [c for c in (doc or {}).get("contacts", [])
                    if c["received_at"] >= keep_from and c["contact_id"] != entry["contact_id"]][-19:]
            return [*kept, entry]

        async def save(contacts: list[dict[str, Any]], rev: int | None) -> None:
            if rev is None:
                await coalesce.insert_one(self.recent, {"_id": customer_id, "contacts": contacts, REV: 0})
            else:
                await write_revision(self.recent, customer_id, rev, {"$set": {"contacts": contacts}})

        try:
            await read_modify_write(load, save, change, what=customer_id)
        except RevisionConflict:
            log.warning("recent contacts of a customer not updated: too many concurrent writers",
                        extra={"contact_id": contact["_id"]})


PROVISIONAL_PREFIX = "prov-"


class MongoDirectory:
    """The customer directory: one document per customer (`_id` = customer id) and one per
    lookup key (`_id` = `phone:138…`, `email:…`, `name-unit:…`) listing its customers, so
    recognising a caller is a handful of reads by `_id`."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]):
        self.customers = db[CUSTOMERS]
        self.keys = db[CUSTOMER_KEYS]

    @staticmethod
    def _entry(doc: dict[str, Any]) -> DirectoryEntry:
        return DirectoryEntry(
            customer_id=doc["_id"], region=doc["region"], names=doc.get("names", []),
            phones=frozenset(doc.get("phones", [])), emails=frozenset(doc.get("emails", [])),
            units=[(u["project"], u["building"], u["unit"]) for u in doc.get("units", [])],
            provisional=doc.get("provisional", False), as_of=doc.get("as_of"),
        )

    @staticmethod
    def _document(entry: DirectoryEntry) -> dict[str, Any]:
        return {
            "region": entry.region, "names": entry.names, "phones": sorted(entry.phones),
            "emails": sorted(entry.emails),
            # Objects, not [project, building, unit]: no arrays nested in arrays (FerretDB).
            "units": [{"project": p, "building": b, "unit": u} for p, b, u in entry.units],
            "provisional": entry.provisional, "merged_into": None, "as_of": entry.as_of,
        }

    async def get(self, customer_id: str) -> DirectoryEntry | None:
        doc = await self.customers.find_one({"_id": customer_id})
        return self._entry(doc) if doc and not doc.get("merged_into") else None

    async def _customer_ids(self, keys: list[str]) -> dict[str, list[str]]:
        docs = await asyncio.gather(*(self.keys.find_one({"_id": k}) for k in dict.fromkeys(keys)))
        return {d["_id"]: d.get("customer_ids", []) for d in docs if d}

    async def candidates(self, keys: list[str]) -> list[DirectoryEntry]:
        ids = sorted({cid for cids in (await self._customer_ids(keys)).values() for cid in cids})
        entries = await asyncio.gather(*(self.get(cid) for cid in ids))
        return [e for e in entries if e is not None]

    async def save(self, entry: DirectoryEntry) -> bool:
        """Upsert an entry and its lookup keys; replaying the same entry changes nothing.
        True if the customer was new."""
        new, _ = await self._save(newest_per_customer([entry]), grouped=True)
        return entry.customer_id in new

    async def save_many(self, entries: list[DirectoryEntry]) -> list[str]:
        """Upsert entries and their keys in few round trips whatever the batch size (a
        region's onboarding brings its whole archive at once): new customers and new keys
        go in with one insert_many each, those that existed are updated in bulk.
        Returns the lookup keys that existed before (only those can hold a provisional
        customer to merge)."""
        _, shared = await self._save(newest_per_customer(entries))
        return shared

    async def _save(self, latest: dict[str, DirectoryEntry], grouped: bool = False) -> tuple[set[str], list[str]]:
        """The customers that were new, and the lookup keys that existed before. `grouped`:
        one request's entry, its inserts sent with those of concurrent requests."""
        insert_new = coalesce.insert_new if grouped else insert_bulk
        existed = list(await insert_new(self.customers,
                                        [{"_id": cid, **self._document(e)} for cid, e in latest.items()]))
        new = set(latest) - set(existed)
        olds = await asyncio.gather(*(self.customers.find_one({"_id": cid}) for cid in existed))
        stale: list[tuple[str, dict[str, Any]]] = []
        for cid, old in zip(existed, olds, strict=True):
            if old is not None:
                if not supersedes(latest[cid], self._entry(old)):
                    del latest[cid]  # we already hold a newer record of this customer
                    continue
                gone = set(self._entry(old).lookup_keys()) - set(latest[cid].lookup_keys())
                stale += [(key, {"$pull": {"customer_ids": cid}}) for key in sorted(gone)]
        await update_by_ids(self.customers, [(cid, {"$set": self._document(latest[cid])})
                                            for cid in existed if cid in latest])
        await update_by_ids(self.keys, stale)
        by_key: dict[str, list[str]] = {}
        for cid, entry in latest.items():
            for key in entry.lookup_keys():
                by_key.setdefault(key, []).append(cid)
        # Keys shared by neighbours (a surname in a unit number) go in apart from the rest: FerretDB
        # inserts a hundred documents at once, but one by one whenever one of them already exists.
        often_shared = [k for k in by_key if key_often_shared(k)]
        rarely_shared = [k for k in by_key if not key_often_shared(k)]
        shared: list[Any] = []
        for group in (rarely_shared, often_shared):
            shared += list(await insert_new(self.keys, [{"_id": k, "customer_ids": by_key[k]} for k in group]))
        # A key some customer already had (a shared phone, a re-sent customer, a surname in a unit number).
        await update_by_ids(self.keys, [(key, {"$addToSet": {"customer_ids": {"$each": by_key[key]}}})
                                       for key in shared])
        return new, [str(k) for k in shared]

    async def merge_provisional_many(self, entries: list[DirectoryEntry],
                                     existing_keys: list[str] | None = None) -> dict[str, list[str]]:
        """Provisional customers sharing a phone or e-mail with one of `entries` become
        aliases of it. `existing_keys`, when given, are the only keys worth reading: those that existed
        before `entries` were saved (a region's onboarding brings mostly new ones)."""
        by_key = {k: e.customer_id for e in entries
                  for k in [f"phone:{p}" for p in e.phones] + [f"email:{m}" for m in e.emails]}
        if existing_keys is not None:
            wanted = set(existing_keys)
            by_key = {k: cid for k, cid in by_key.items() if k in wanted}
        merges: dict[str, list[str]] = {}
        for key, cids in (await self._customer_ids(list(by_key))).items():
            real = by_key[key]
            for pid in cids:
                if pid.startswith(PROVISIONAL_PREFIX) and pid != real and pid not in merges.get(real, []):
                    merges.setdefault(real, []).append(pid)
        for real, provisional_ids in merges.items():
            for pid in provisional_ids:
                old = await self.customers.find_one({"_id": pid})
                await self.customers.update_one({"_id": pid}, {"$set": {"merged_into": real}})
                for key in self._entry(old).lookup_keys() if old else []:
                    await self.keys.update_one({"_id": key}, {"$pull": {"customer_ids": pid}})
        return merges
