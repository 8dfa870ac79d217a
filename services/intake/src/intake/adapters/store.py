"""Intake's MongoDB repositories: contacts (with their outbox) and the customer directory.

Hot queries use equality on scalar fields only (FerretDB pushes those down to SQLite):
contacts by `customer_id`, directory keys by `key`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm_runtime.outbox import OutgoingEvent, new_document_with_outbox
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from intake.domain.contacts import ChannelStats, EarlierContact
from intake.domain.customers import DirectoryEntry

CONTACTS = "contacts"
CUSTOMERS = "customers"
CUSTOMER_KEYS = "customer_keys"


async def ensure_indexes(db: AsyncDatabase[dict[str, Any]]) -> None:
    await db[CONTACTS].create_index([("customer_id", ASCENDING)])
    await db[CONTACTS].create_index([("region", ASCENDING)])
    await db[CUSTOMER_KEYS].create_index([("key", ASCENDING)])
    await db[CUSTOMER_KEYS].create_index([("customer_id", ASCENDING)])


class MongoContactStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], on_write: Any = None):
        self.collection = db[CONTACTS]
        self.on_write = on_write

    async def get(self, contact_id: str) -> dict[str, Any] | None:
        return await self.collection.find_one({"_id": contact_id}, {"outbox": 0})

    async def recent_for_customer(self, customer_id: str, since: datetime) -> list[EarlierContact]:
        cursor = self.collection.find(
            {"customer_id": customer_id},
            {"received_at": 1, "normalised_text": 1, "duplicate_of": 1},
        )
        return [
            EarlierContact(d["_id"], d["received_at"], d.get("normalised_text", ""), d.get("duplicate_of"))
            async for d in cursor
            if d["received_at"] >= since
        ]

    async def insert(self, contact: dict[str, Any], events: list[OutgoingEvent]) -> bool:
        """Store the contact and its events in one write; False if it already exists."""
        try:
            await self.collection.insert_one(new_document_with_outbox(contact, events))
        except DuplicateKeyError:
            return False
        if self.on_write:
            self.on_write()
        return True

    async def channel_stats(self, regions: list[str] | None, region: str | None,
                            from_: datetime, to: datetime) -> ChannelStats:
        match: dict[str, Any] = {"received_at": {"$gte": from_, "$lt": to}}
        if region:
            match["region"] = region
        elif regions is not None:
            match["region"] = {"$in": regions}
        pipeline = [{"$match": match}, {"$group": {"_id": "$channel", "count": {"$sum": 1}}}]
        counts = {d["_id"]: d["count"] async for d in await self.collection.aggregate(pipeline)}
        return ChannelStats(counts)


PROVISIONAL_PREFIX = "prov-"


async def _insert_ignoring_duplicates(collection: Any, docs: list[dict[str, Any]]) -> None:
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        if any(err.get("code") != 11000 for err in exc.details.get("writeErrors", [])):
            raise


class MongoDirectory:
    """The customer directory: one document per customer plus one per lookup key
    (`phone:…`, `email:…`, `name-unit:…`) so recognition is a few equality reads."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]):
        self.customers = db[CUSTOMERS]
        self.keys = db[CUSTOMER_KEYS]

    @staticmethod
    def _entry(doc: dict[str, Any]) -> DirectoryEntry:
        return DirectoryEntry(
            customer_id=doc["_id"], region=doc["region"], names=doc.get("names", []),
            phones=frozenset(doc.get("phones", [])), emails=frozenset(doc.get("emails", [])),
            units=[(u["project"], u["building"], u["unit"]) for u in doc.get("units", [])],
            provisional=doc.get("provisional", False),
        )

    async def get(self, customer_id: str) -> DirectoryEntry | None:
        doc = await self.customers.find_one({"_id": customer_id, "merged_into": None})
        return self._entry(doc) if doc else None

    async def candidates(self, keys: list[str]) -> list[DirectoryEntry]:
        ids = {d["customer_id"] async for d in self.keys.find({"key": {"$in": keys}}, {"customer_id": 1})}
        if not ids:
            return []
        return [self._entry(d) async for d in self.customers.find({"_id": {"$in": sorted(ids)},
                                                                    "merged_into": None})]

    @staticmethod
    def _document(entry: DirectoryEntry) -> dict[str, Any]:
        return {
            "region": entry.region, "names": entry.names, "phones": sorted(entry.phones),
            "emails": sorted(entry.emails),
            # Objects, not [project, building, unit]: no arrays nested in arrays (FerretDB).
            "units": [{"project": p, "building": b, "unit": u} for p, b, u in entry.units],
            "provisional": entry.provisional, "merged_into": None,
        }

    async def save(self, entry: DirectoryEntry, *, event_id: str | None = None) -> None:
        """Upsert an entry and its lookup keys; replaying the same entry changes nothing."""
        await self.save_many([entry])

    async def save_many(self, entries: list[DirectoryEntry]) -> None:
        """Upsert entries and their keys in a few round trips, whatever the batch size:
        a region's onboarding brings its whole archive at once."""
        latest = {e.customer_id: e for e in entries}  # the last word on a customer wins
        ids = list(latest)
        existing = {d["_id"]: d async for d in self.customers.find({"_id": {"$in": ids}})}
        fresh = [{"_id": cid, **self._document(e)} for cid, e in latest.items() if cid not in existing]
        if fresh:
            await _insert_ignoring_duplicates(self.customers, fresh)
        for cid, entry in latest.items():
            if cid in existing:
                await self.customers.update_one({"_id": cid}, {"$set": self._document(entry)})
        stale = []
        for cid, doc in existing.items():
            old_keys = set(self._entry(doc).lookup_keys())
            stale += [f"{k}|{cid}" for k in old_keys - set(latest[cid].lookup_keys())]
        if stale:
            await self.keys.delete_many({"_id": {"$in": stale}})
        # A key document's content follows from its _id, so "insert unless present" is an
        # upsert; FerretDB 1.x answers bulk updates in a shape PyMongo cannot read.
        keys = [{"_id": f"{key}|{cid}", "key": key, "customer_id": cid}
                for cid, e in latest.items() for key in e.lookup_keys()]
        if keys:
            await _insert_ignoring_duplicates(self.keys, keys)

    async def provisional_sharing_keys(self, entries: list[DirectoryEntry]) -> dict[str, list[str]]:
        """Provisional customers with a phone or e-mail of one of `entries`: real id -> them."""
        by_key = {k: e.customer_id for e in entries
                  for k in [f"phone:{p}" for p in e.phones] + [f"email:{m}" for m in e.emails]}
        if not by_key:
            return {}
        found: dict[str, list[str]] = {}
        async for d in self.keys.find({"key": {"$in": list(by_key)}}):
            real = by_key[d["key"]]
            if d["customer_id"].startswith(PROVISIONAL_PREFIX) and d["customer_id"] != real:
                found.setdefault(real, []).append(d["customer_id"])
        return found

    async def merge_provisional(self, entry: DirectoryEntry) -> list[str]:
        """Provisional customers sharing a phone or e-mail with `entry` become aliases of it."""
        return (await self.merge_provisional_many([entry])).get(entry.customer_id, [])

    async def merge_provisional_many(self, entries: list[DirectoryEntry]) -> dict[str, list[str]]:
        merges = await self.provisional_sharing_keys(entries)
        for real, provisional_ids in merges.items():
            for pid in provisional_ids:
                await self.customers.update_one({"_id": pid}, {"$set": {"merged_into": real}})
                await self.keys.delete_many({"customer_id": pid})
        return merges
