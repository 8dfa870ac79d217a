"""Cases' MongoDB repositories: cases (state, timeline and outbox in one document), the
contacts the service has seen, collective incidents, and case numbers.

Hot reads are by `_id` only (FerretDB 1.x with SQLite pushes down no other filter): a
case by number goes through `case_numbers`, a customer's cases through `customer_cases`,
collective facts through one document per matter and day. Writes to a case go through
the outbox with a revision claim, so concurrent writers never undo each other.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from crm_contracts.regions import case_number
from crm_runtime import known
from crm_runtime.batching import insert_new
from crm_runtime.outbox import Outbox, OutgoingEvent
from crm_runtime.revisions import REV, RevisionConflict
from crm_runtime.rmw import read_modify_write, update_document
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from cases.adapters.documents import case_from_doc, case_to_doc
from cases.adapters.fact_buckets import FIELDS, bucket_facts, list_future, with_facts
from cases.adapters.queue import QueueIndex, kept_in_part, location_of, queue_location
from cases.domain.collective import ContactFact
from cases.domain.procedure import Case
from cases.domain.sla import next_due

CASES = "cases"
CONTACTS = "contacts"
INCIDENTS = "incidents"
COUNTERS = "counters"
CASE_NUMBERS = "case_numbers"
CUSTOMER_CASES = "customer_cases"
FACTS = "collective_facts"
ARRIVALS = "contact_arrivals"  # first sight of each contact (see batch_store.py)

QUEUE_FILTERS = ("region", "status", "severity", "category", "department", "assignee")


NO_DEADLINE = datetime(9999, 12, 31, tzinfo=UTC)


class ConcurrentUpdate(RevisionConflict):
    """The case changed between reading and writing; the caller retries on fresh state."""


async def ensure_indexes(db: AsyncDatabase[dict[str, Any]]) -> None:
    # For MongoDB, where the queue's filters use them; FerretDB/SQLite reads by _id only.
    for field in (*QUEUE_FILTERS, "sla_due_at"):
        await db[CASES].create_index([(field, ASCENDING)])
    await db[CASES].create_index([("region", ASCENDING), ("sla_due_at", ASCENDING)])


def case_document(case: Case) -> dict[str, Any]:
    doc = case_to_doc(case)
    doc["_id"] = doc["case_id"]
    doc["is_open"] = case.is_open
    # One scalar per case for the queue's "due first" order and the SLA timer; a case with
    # no running clock sorts last (a sentinel, not null: null sorts first in MongoDB).
    doc["sla_due_at"] = next_due(case.clocks) or NO_DEADLINE
    doc["queue_at"] = queue_location(doc)
    return doc


class CaseRepository:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], outbox: Outbox):
        self.collection = db[CASES]
        self.numbers = db[CASE_NUMBERS]
        self.counters = db[COUNTERS]
        self.by_customer = db[CUSTOMER_CASES]
        self.outbox = outbox
        self.queue_index = QueueIndex(db)

    async def get(self, case_id_or_number: str) -> Case | None:
        found = await self.get_with_rev(case_id_or_number)
        return found[0] if found else None

    async def get_with_rev(self, case_id_or_number: str) -> tuple[Case, int] | None:
        """The case and the stored revision a write must start from."""
        doc = await self.collection.find_one({"_id": case_id_or_number}, {"outbox": 0})
        if doc is None:
            number = await self.numbers.find_one({"_id": case_id_or_number})
            if number is not None:
                doc = await self.collection.find_one({"_id": number["case_id"]}, {"outbox": 0})
        return (case_from_doc(doc), int(doc.get(REV, 0))) if doc else None

    async def exists(self, case_id: str) -> bool:
        return await self.collection.find_one({"_id": case_id}, {"_id": 1}) is not None

    async def insert(self, case: Case, events: list[OutgoingEvent]) -> bool:
        doc = case_document(case)
        note = await self.queue_index.note_repair(case.case_id, 0, None)
        if not await self.outbox.insert(self.collection, doc, events):
            return False  # the note stays: if an earlier attempt died before queueing, repair queues it
        await self.queue_index.place(doc, None, 0)
        await self.queue_index.done(note)
        if case.customer_id:
            await self.by_customer.update_one({"_id": case.customer_id},
                                              {"$addToSet": {"case_ids": case.case_id}}, upsert=True)
        return True

    async def save(self, case: Case, rev: int, events: list[OutgoingEvent]) -> None:
        """Write the case and its events in one update, if nobody changed it since `rev`."""
        doc = case_document(case)
        before = (await self.collection.find_one({"_id": case.case_id}, {"queue_at": 1}) or {}).get("queue_at")
        previous = location_of(before)
        doc["queue_at"] = kept_in_part(doc["queue_at"], before)  # its row stays where it is in that hour
        # The queue row follows the case, moved after the case is written; the note lets
        # `repair_queue` finish the move if this process dies in between.
        note = await self.queue_index.note_repair(case.case_id, rev + 1, previous)
        try:
            await self.outbox.update(self.collection, case.case_id, rev,
                                     {"$set": {k: v for k, v in doc.items() if k != "_id"}}, events)
        except RevisionConflict as exc:
            await self.queue_index.done(note)
            raise ConcurrentUpdate(case.case_id) from exc
        await self.queue_index.place(doc, previous, rev + 1)
        await self.queue_index.done(note)

    async def repair_queue(self, older_than_s: float = 30.0) -> int:
        """Finish the queue moves of case writes whose writer died (see queue.py)."""
        async def load(case_id: str) -> tuple[dict[str, Any], int] | None:
            doc = await self.collection.find_one({"_id": case_id}, {"outbox": 0})
            return (doc, int(doc.get(REV, 0))) if doc else None

        return await self.queue_index.repair(load, older_than_s)

    async def open_cases_of(self, customer_id: str) -> list[Case]:
        index = await self.by_customer.find_one({"_id": customer_id})
        cases = [await self.get(cid) for cid in (index or {}).get("case_ids", [])]
        return [c for c in cases if c is not None and c.is_open]

    async def allocate_number(self, region: str, year: int, case_id: str) -> str:
        """The next human-readable number of a region and year, unique across replicas.

        The counter's $inc is a hint; the unique insert of the number decides (FerretDB's
        updates are not atomic). A number once given to a case stays with it on retries.
        """
        existing = await self.numbers.find_one({"_id": f"case:{case_id}"})
        if existing:
            return str(existing["number"])
        while True:
            counter = await self.counters.find_one_and_update(
                {"_id": f"{region}:{year}"}, {"$inc": {"seq": 1}}, upsert=True,
                return_document=ReturnDocument.AFTER)
            assert counter is not None  # upserted
            number = case_number(region, year, int(counter["seq"]))
            try:
                await self.numbers.insert_one({"_id": number, "case_id": case_id})
            except DuplicateKeyError:
                continue
            await self.numbers.insert_one({"_id": f"case:{case_id}", "number": number})
            return number

    async def queue(self, filters: dict[str, Any], *, regions: list[str], due_before: datetime | None,
                    after: tuple[datetime, str] | None, limit: int) -> list[dict[str, Any]]:
        """Open cases of `regions` matching `filters`, due first, after the cursor; see queue.py."""
        wanted = {k: v for k, v in filters.items() if v is not None}
        return await self.queue_index.page(wanted, regions=regions, due_before=due_before, after=after, limit=limit)




class ContactLog:
    """Every contact the service has seen, as a collective-detection fact and a pointer to
    its case; consultations and praise wait here until staff answer or open a case. Every
    write after the first goes through the revision helper: staff and the Kafka handler
    may write one contact at once, and FerretDB's updates are not atomic."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]):
        self.collection = db[CONTACTS]
        self.facts_by_day = db[FACTS]
        self.arrivals = db[ARRIVALS]

    async def get(self, contact_id: str) -> dict[str, Any] | None:
        return await self.collection.find_one({"_id": contact_id})

    async def record(self, contact: dict[str, Any]) -> None:
        # Its arrival too, as the batch path records it: a later batch then looks it up.
        await insert_new(self.arrivals, [{"_id": contact["_id"]}])
        await self.collection.update_one({"_id": contact["_id"]}, {"$setOnInsert": contact}, upsert=True)

    async def change(self, contact_id: str,
                     change: Callable[[dict[str, Any] | None], dict[str, Any] | None]) -> dict[str, Any] | None:
        """Read-modify-write of one contact; `change` returns the fields to set, or None."""
        return await update_document(self.collection, contact_id, change)

    async def mark_handled(self, contact_id: str, case_id: str | None, status: str | None) -> None:
        """The Kafka handler's last write. A plain update is safe here: staff may change a
        contact only once it is handled, and a redelivery writes the same values."""
        await self.collection.update_one({"_id": contact_id},
                                         {"$set": {"case_id": case_id, "handled": True, "status": status}})

    async def add_fact(self, query_key: str, contact: dict[str, Any]) -> None:
        """File the contact under its matter and day, for collective detection."""
        bucket_id = f"{query_key}|{contact['received_at'].astimezone(UTC).date().isoformat()}"
        fact = {k: contact.get(k) for k in FIELDS}
        await list_future(self.facts_by_day, [bucket_id])  # a contact stamped in the future (see fact_buckets)
        # Another contact about the same matter may get there first: the helper retries.
        known.forget(self.facts_by_day, [bucket_id])  # what the batch path remembers of it is past
        await update_document(self.facts_by_day, bucket_id, lambda bucket: with_facts(bucket, [fact]))

    async def facts(self, query_key: str, since: datetime, until: datetime) -> list[ContactFact]:
        days, day = [], since.astimezone(UTC).date()
        while day <= until.astimezone(UTC).date():
            days.append(day)
            day += timedelta(days=1)
        facts: list[ContactFact] = []
        for d in days:
            bucket = await self.facts_by_day.find_one({"_id": f"{query_key}|{d.isoformat()}"})
            facts += [_fact(f) for f in bucket_facts(bucket) if since <= f["received_at"] <= until]
        return facts


def _fact(d: dict[str, Any]) -> ContactFact:
    return ContactFact(contact_id=d["_id"], received_at=d["received_at"], project=d.get("project"),
                       category=d.get("category"), building=d.get("building"), customer_id=d.get("customer_id"),
                       channel=d.get("channel"), mentions_media=bool(d.get("mentions_media")),
                       case_id=d.get("case_id"))


class IncidentRepository:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], outbox: Outbox):
        self.collection = db[INCIDENTS]
        self.outbox = outbox

    async def upsert(self, incident: dict[str, Any], events: list[OutgoingEvent]) -> None:
        incident_id = incident.pop("_id")

        async def load() -> tuple[dict[str, Any], int] | None:
            existing = await self.collection.find_one({"_id": incident_id}, {REV: 1})
            return (existing, int(existing.get(REV, 0))) if existing is not None else None

        async def save(fields: dict[str, Any], rev: int | None) -> None:
            if rev is None:
                if not await self.outbox.insert(self.collection, {"_id": incident_id, **fields}, events):
                    raise RevisionConflict(incident_id)  # another contact of it was written first
            else:
                await self.outbox.update(self.collection, incident_id, rev, {"$set": fields}, events)

        await read_modify_write(load, save, lambda _existing: incident, attempts=10, what=incident_id)
