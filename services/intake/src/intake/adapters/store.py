"""Intake's MongoDB repositories: contacts (with their outbox) and the customer directory.

Hot queries use equality on scalar fields only (FerretDB pushes those down to SQLite):
contacts by `customer_id`, directory keys by `key`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm_runtime.outbox import OutgoingEvent, new_document_with_outbox
from pymongo import ASCENDING, DeleteMany, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

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
            units=[tuple(u) for u in doc.get("units", [])],  # type: ignore[misc]
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

    def _operations(self, entry: DirectoryEntry) -> tuple[UpdateOne, list[Any]]:
        document = {
            "region": entry.region, "names": entry.names, "phones": sorted(entry.phones),
            "emails": sorted(entry.emails), "units": [list(u) for u in entry.units],
            "provisional": entry.provisional, "merged_into": None,
        }
        keys = entry.lookup_keys()
        key_ops: list[Any] = [
            UpdateOne({"_id": f"{key}|{entry.customer_id}"},
                      {"$set": {"key": key, "customer_id": entry.customer_id}}, upsert=True)
            for key in keys
        ]
        key_ops.append(DeleteMany({"customer_id": entry.customer_id, "key": {"$nin": keys}}))
        return UpdateOne({"_id": entry.customer_id}, {"$set": document}, upsert=True), key_ops

    async def save(self, entry: DirectoryEntry, *, event_id: str | None = None) -> None:
        """Upsert an entry and its lookup keys; replaying the same entry changes nothing."""
        customer_op, key_ops = self._operations(entry)
        await self.customers.bulk_write([customer_op], ordered=True)
        await self.keys.bulk_write(key_ops, ordered=True)

    async def save_many(self, entries: list[DirectoryEntry]) -> None:
        """Absorb a batch (a region's onboarding) in two bulk writes."""
        customer_ops, key_ops = [], []
        for entry in entries:
            c, k = self._operations(entry)
            customer_ops.append(c)
            key_ops.extend(k)
        if customer_ops:
            await self.customers.bulk_write(customer_ops, ordered=False)
            await self.keys.bulk_write(key_ops, ordered=False)

    async def merge_provisional(self, entry: DirectoryEntry) -> list[str]:
        """Provisional customers sharing a phone or e-mail with `entry` become aliases of it."""
        keys = [f"phone:{p}" for p in entry.phones] + [f"email:{e}" for e in entry.emails]
        if not keys:
            return []
        merged = []
        for candidate in await self.candidates(keys):
            if candidate.provisional and candidate.customer_id != entry.customer_id:
                await self.customers.update_one({"_id": candidate.customer_id},
                                                {"$set": {"merged_into": entry.customer_id}})
                await self.keys.delete_many({"customer_id": candidate.customer_id})
                merged.append(candidate.customer_id)
        return merged
