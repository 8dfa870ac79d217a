"""The stored cases the staff-queue benchmark pages through: documents and queue rows in
the shapes the cases service stores them (cases.adapters.queue), inserted in bulk."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from cases.adapters.queue import due_hour, queue_location, queue_row
from cases.adapters.store import NO_DEADLINE
from pymongo.errors import BulkWriteError

REGIONS = ["shenzhen", "shanghai", "beijing", "tianjin", "chengdu", "shenyang"]
OPEN_SHARE = 0.03  # most stored cases are closed; the queue shows the open ones
OPEN_STATUSES = ["received", "validated", "classified", "assessed", "investigating", "handling", "resolved"]
SEVERITIES = ["general"] * 85 + ["major"] * 13 + ["crisis"] * 2


async def insert_all(collection: Any, docs: list[dict[str, Any]]) -> None:
    for i in range(0, len(docs), 5000):
        try:
            await collection.insert_many(docs[i:i + 5000], ordered=False)
        except BulkWriteError:
            pass  # re-run on the same data


async def generate(db: Any, start: int, count: int) -> None:
    """Store `count` cases as the service stores them: documents, and the queue rows of
    the open ones in their region/hour buckets (the shapes of cases.adapters.queue)."""
    now = datetime.now(UTC)
    rng = random.Random(start)
    cases: list[dict[str, Any]] = []
    buckets: dict[str, dict[str, Any]] = {}
    for i in range(start, start + count):
        case_id = f"bench-{i:08d}"
        region = REGIONS[i % len(REGIONS)]
        is_open = rng.random() < OPEN_SHARE
        due = now + timedelta(minutes=rng.randint(-3 * 24 * 60, 14 * 24 * 60)) if is_open else NO_DEADLINE
        doc = {
            "_id": case_id, "case_id": case_id, "case_number": f"BX-2026-{i:07d}", "region": region,
            "status": rng.choice(OPEN_STATUSES) if is_open else "closed", "is_open": is_open,
            "severity": rng.choice(SEVERITIES), "category": "engineering_quality",
            "department": "engineering", "assignee": None, "customer_id": f"c{i}", "project": f"项目{i % 300}",
            "channel": "hotline", "subject": "卫生间漏水", "opened_at": now - timedelta(days=rng.randint(0, 700)),
            "sla_due_at": due, "waiting_for_customer": False, "collective_incident_id": None,
            "timeline": [{"action": "opened"}], "rev": 0,
        }
        doc["queue_at"] = queue_location(doc)
        cases.append(doc)
        if is_open:
            buckets.setdefault(f"{region}|{due_hour(due)}", {})[case_id] = queue_row(doc)
    await insert_all(db["cases"], cases)
    index = db["queue_index"]
    for bucket_id, rows in buckets.items():
        await index.update_one({"_id": bucket_id}, {"$set": {f"rows.{k}": v for k, v in rows.items()},
                                                    "$setOnInsert": {"rev": 0}}, upsert=True)
    for region in REGIONS:
        hours = {int(b.split("|")[1]) for b in buckets if b.startswith(region + "|")}
        old = await index.find_one({"_id": f"hours:{region}"})
        merged = sorted(hours | set(old["hours"] if old else []))
        await index.update_one({"_id": f"hours:{region}"}, {"$set": {"hours": merged}, "$setOnInsert": {"rev": 0}},
                               upsert=True)
