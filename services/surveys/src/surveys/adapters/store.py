"""Surveys' MongoDB repositories: the surveys (state, response and outbox in one document)
and the small local directory built from partner and case events.

Every hot read is by `_id` (FerretDB 1.x with SQLite pushes down no other filter): a
customer's surveys through the list on its customer document, a home's recent surveys on
the home's document (`_id` = project|building|unit). Survey writes go through the outbox
with a revision claim, so an agent, a customer on the page and a timer never undo each
other. Only the annual campaign reads a whole region (once a year).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from crm_runtime.batching import insert_new
from crm_runtime.idempotency import apply_once
from crm_runtime.outbox import MARKERS, OUTBOX, PENDING, Outbox, OutgoingEvent, new_document_with_outbox
from crm_runtime.revisions import REV
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

SURVEYS = "surveys"
CUSTOMERS = "customers"
HOMES = "homes"
CASES = "known_cases"
COVERAGE = "coverage"
CAMPAIGNS = "campaigns"
# A campaign batch's events, one document per batch (see `SurveyStore.insert_campaign_batch`).
CAMPAIGN_OUTBOX = "campaign_outbox"

# FerretDB 1.x: a bulk `update` of many statements can hang (docs/reliability.md).
BULK_STATEMENTS = 10
# A full read in batches this large reads about a third faster on FerretDB than the default.
READ_BATCH = 10_000


async def ensure_indexes(db: AsyncDatabase[dict[str, Any]]) -> None:
    """Nothing beyond `_id` is read on a hot path (see the module docstring)."""


class SurveyStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], outbox: Outbox):
        self.collection = db[SURVEYS]
        self.markers = db[MARKERS]
        self.outbox = outbox

    async def get(self, survey_id: str) -> dict[str, Any] | None:
        return await self.collection.find_one({"_id": survey_id}, {"outbox": 0})

    async def insert(self, doc: dict[str, Any], events: Sequence[OutgoingEvent]) -> bool:
        """False when the survey already exists (a redelivered event)."""
        return await self.outbox.insert(self.collection, doc, events)

    async def update(self, doc: dict[str, Any], change: dict[str, Any], events: Sequence[OutgoingEvent]) -> None:
        """Write `change` if the survey is still at the revision `doc` was read at, else
        `RevisionConflict`."""
        await self.outbox.update(self.collection, doc["_id"], int(doc.get(REV, 0)), {"$set": change}, events)

    async def insert_campaign_batch(self, batch_id: str, docs: list[dict[str, Any]],
                                    events: list[OutgoingEvent]) -> int:
        """Store a campaign batch: its surveys in one bulk insert (those that exist are
        skipped), then all their events in one outbox document with one marker; returns how
        many surveys were new.

        Not one write per survey with its event, as elsewhere: a campaign's surveys are
        written again identically by a rerun (ids and link nonces derive from the survey),
        and the campaign's timer reruns until it completes, so a crash between the two
        writes is repaired by the rerun, whose events carry the same ids. Surveys first:
        no event names a survey not yet stored."""
        if not docs:
            return 0
        existed = await insert_new(self.collection, [{**d, OUTBOX: [], PENDING: False, REV: 0} for d in docs])
        if events:
            outbox = self.collection.database[CAMPAIGN_OUTBOX]
            await insert_new(self.markers, [{"_id": f"{CAMPAIGN_OUTBOX}|{batch_id}", "collection": CAMPAIGN_OUTBOX,
                                              "doc_id": batch_id}])
            await insert_new(outbox, [new_document_with_outbox({"_id": batch_id}, events)])
            if self.outbox.notify:
                self.outbox.notify()
        return len(docs) - len(existed)

    async def many(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        found = [await self.get(i) for i in ids]
        return [d for d in found if d is not None]

    async def of_campaign(self, campaign_id: str) -> AsyncIterator[dict[str, Any]]:
        """A campaign's surveys: a full read, for its reminder and its close only."""
        async for doc in self.collection.find({"campaign_id": campaign_id}, {"outbox": 0}):
            yield doc


class Directory:
    """What surveys knows of customers, homes and cases, each by `_id`."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]):
        self.customers = db[CUSTOMERS]
        self.homes = db[HOMES]
        self.cases = db[CASES]

    async def customer(self, customer_id: str) -> dict[str, Any] | None:
        return await self.customers.find_one({"_id": customer_id})

    async def home(self, key: str | None) -> dict[str, Any] | None:
        return await self.homes.find_one({"_id": key}) if key else None

    async def case(self, case_id: str) -> dict[str, Any] | None:
        return await self.cases.find_one({"_id": case_id})

    async def upsert_customers(self, records: list[dict[str, Any]]) -> None:
        """A batch of the partner archive: the newest record replaces what we knew."""
        customers, homes = [], []
        for r in records:
            customers.append(UpdateOne({"_id": r["customer_id"]}, {"$set": {
                "region": r["region"], "consent": r["consent"], "units": r["units"], "known": True,
                "as_of": r["as_of"]}}, upsert=True))
            for u in r["units"]:
                homes.append(UpdateOne({"_id": u["key"]}, {
                    "$addToSet": {"customer_ids": r["customer_id"]},
                    "$set": {"region": r["region"], "project": u["project"], "building": u["building"],
                             "unit": u["unit"]}}, upsert=True))
        await _bulk(self.customers, customers)
        await _bulk(self.homes, homes)

    async def update_home(self, key: str, fields: dict[str, Any], customer_id: str | None = None) -> None:
        update: dict[str, Any] = {"$set": fields}
        if customer_id:
            update["$addToSet"] = {"customer_ids": customer_id}
        await self.homes.update_one({"_id": key}, update, upsert=True)

    async def note_fit_out(self, key: str, fit_out: str) -> None:
        """Copy a home's fit-out to its owners' documents: the annual campaign then reads the
        region's customers only, not their homes too (a full read costs per document)."""
        home = await self.homes.find_one({"_id": key}, {"customer_ids": 1})
        for customer_id in (home or {}).get("customer_ids", []):
            await self.customers.update_one({"_id": customer_id},
                                            {"$addToSet": {"fit_outs": {"key": key, "fit_out": fit_out}}},
                                            upsert=True)

    async def save_case(self, case_id: str, fields: dict[str, Any], sequence: int | None) -> bool:
        """Keep the newest state of a case (its events carry a sequence); False when an
        older event arrives late."""
        doc = await self.cases.find_one({"_id": case_id}, {"sequence": 1})
        if doc is not None and sequence is not None and int(doc.get("sequence") or 0) > sequence:
            return False
        await self.cases.update_one({"_id": case_id}, {"$set": {**fields, "sequence": sequence}}, upsert=True)
        return True

    async def add_case_to_customer(self, customer_id: str, case_id: str) -> None:
        await self.customers.update_one({"_id": customer_id}, {"$addToSet": {"case_ids": case_id}}, upsert=True)

    async def add_survey_id(self, customer_id: str, survey_id: str) -> None:
        await self.customers.update_one({"_id": customer_id}, {"$addToSet": {"survey_ids": survey_id}}, upsert=True)

    async def region_customers(self, region: str) -> AsyncIterator[dict[str, Any]]:
        """A whole region's customers, with their homes' fit-outs: a full read, for the
        annual campaign (only what it needs, in large batches: FerretDB's cost is per
        document read and sent)."""
        cursor = self.customers.find({"region": region}, {"units": 1, "consent": 1, "known": 1, "case_ids": 1,
                                                          "fit_outs": 1})
        async for doc in cursor.batch_size(READ_BATCH):
            yield doc


class CoverageStore:
    """Counters per region, kind, project and product type: visits due, done, and the
    households that answered. Each survey counts once (`apply_once` on its id)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]):
        self.collection = db[COVERAGE]

    @staticmethod
    def key(region: str, kind: str, project: str | None, product_type: str | None) -> str:
        return f"{region}|{kind}|{project or '-'}|{product_type or 'unknown'}"

    async def count(self, survey: dict[str, Any], what: str, n: int = 1, *, once: str | None = None) -> None:
        key = self.key(survey["region"], survey["kind"], survey.get("project"), survey.get("product_type"))
        change: dict[str, Any] = {"$inc": {what: n}, "$set": {
            "region": survey["region"], "kind": survey["kind"], "project": survey.get("project") or "-",
            "product_type": survey.get("product_type") or "unknown"}}
        home = survey.get("household")
        if what == "done" and home:
            change["$addToSet"] = {"households": home}
        if await apply_once(self.collection, key, once or f"{what}:{survey['_id']}", change):
            await self.collection.database[COVERAGE + "_keys"].update_one(
                {"_id": survey["region"]}, {"$addToSet": {"keys": key}}, upsert=True)

    async def rows(self, region: str) -> list[dict[str, Any]]:
        keys = await self.collection.database[COVERAGE + "_keys"].find_one({"_id": region})
        docs = [await self.collection.find_one({"_id": k}, {"applied_events": 0}) for k in (keys or {}).get("keys", [])]
        return [d for d in docs if d is not None]


class CampaignStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]):
        self.collection = db[CAMPAIGNS]

    async def get(self, campaign_id: str) -> dict[str, Any] | None:
        return await self.collection.find_one({"_id": campaign_id})

    async def create(self, doc: dict[str, Any]) -> bool:
        return not await insert_new(self.collection, [doc])

    async def update(self, campaign_id: str, fields: dict[str, Any]) -> None:
        await self.collection.update_one({"_id": campaign_id}, {"$set": fields})


async def _bulk(collection: Any, updates: list[UpdateOne]) -> None:
    for start in range(0, len(updates), BULK_STATEMENTS):
        await collection.bulk_write(updates[start:start + BULK_STATEMENTS], ordered=False)
