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

    async def _save_keys(self, entries: list[DirectoryEntry]) -> None:
        # A key document's content follows from its _id, so "insert unless present" is an
        # upsert; FerretDB 1.x answers bulk updates in a shape PyMongo cannot read.
        docs = [{"_id": f"{key}|{e.customer_id}", "key": key, "customer_id": e.customer_id}
                for e in entries for key in e.lookup_keys()]
        if docs:
            try:
                await self.keys.insert_many(docs, ordered=False)
            except BulkWriteError as exc:
                if any(err.get("code") != 11000 for err in exc.details.get("writeErrors", [])):
                    raise
        for e in entries:
            await self.keys.delete_many({"customer_id": e.customer_id, "key": {"$nin": e.lookup_keys()}})

    async def save(self, entry: DirectoryEntry, *, event_id: str | None = None) -> None:
        """Upsert an entry and its lookup keys; replaying the same entry changes nothing."""
        await self.customers.update_one({"_id": entry.customer_id}, {"$set": self._document(entry)}, upsert=True)
        await self._save_keys([entry])

    async def save_many(self, entries: list[DirectoryEntry]) -> None:
        """Absorb a batch (a region's onboarding)."""
        for entry in entries:
            await self.customers.update_one({"_id": entry.customer_id}, {"$set": self._document(entry)},
                                            upsert=True)
        await self._save_keys(entries)

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
