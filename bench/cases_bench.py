"""Cases benchmarks on the embedded stack (FerretDB 1.24 + Kafka 4.1):

1. the staff queue (`GET /v1/cases`) at 10,000 and at 1,000,000 stored cases, p50/p99,
   and the ratio between them: the queue must stay flat as cases pile up;
2. cases opened per second from a backlog of `contact.received` events, next to raw
   aiokafka consuming the same backlog in the same run.

    .venv/bin/python -m bench.cases_bench [--quick]

`--quick` uses 2,000 / 20,000 cases and a 300-contact backlog (a smoke run); the full run
uses 10,000 / 1,000,000 cases and a 1,000-contact backlog.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from cases.adapters.queue import due_hour, queue_location, queue_row
from cases.adapters.store import NO_DEADLINE
from cases.bootstrap import create_app
from cases.settings import CasesSettings
from crm_contracts import topics
from crm_devstack.pytest_plugin import start_stack
from crm_devstack.topics import ensure_topics
from crm_runtime.auth import issue_token
from crm_runtime.mongo import create_client
from crm_runtime.testing import make_event, running_app, unique_suffix
from pymongo.errors import BulkWriteError

from bench.common import committed_total, topic_total

SECRET = "bench-secret-of-at-least-thirty-two-bytes"
REGIONS = ["shenzhen", "shanghai", "beijing", "tianjin", "chengdu", "shenyang"]
OPEN_SHARE = 0.03  # most stored cases are closed; the queue shows the open ones
OPEN_STATUSES = ["received", "validated", "classified", "assessed", "investigating", "handling", "resolved"]
SEVERITIES = ["general"] * 85 + ["major"] * 13 + ["crisis"] * 2


def settings(stack: Any, suffix: str) -> CasesSettings:
    return CasesSettings(KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap, MONGODB_URL=stack.mongodb_url,
                         CRM_DATABASE_SUFFIX=suffix, CRM_JWT_SECRET=SECRET, CRM_LOG_LEVEL="WARNING",
                         CRM_OUTBOX_POLL_INTERVAL_S=0.1)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


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


async def measure_queue(app: Any, rounds: int) -> dict[str, tuple[float, float]]:
    headers = {"Authorization": "Bearer " + issue_token(SECRET, sub="bench", roles=["supervisor"], regions=["*"])}
    queries = {
        "first page, one region": {"region": "shenzhen", "limit": 50},
        "status=handling": {"region": "shenzhen", "status": "handling", "limit": 50},
        "severity=major": {"region": "shanghai", "severity": "major", "limit": 50},
        "all regions": {"limit": 50},
    }
    results = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        for name, params in queries.items():
            progress(f"  {name}")
            timings = []
            for _ in range(rounds):
                t = time.perf_counter()
                r = await client.get("/v1/cases", params=params, headers=headers)
                timings.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200, r.text
            results[name] = (statistics.median(timings), percentile(timings, 99))
        t = time.perf_counter()
        first = (await client.get("/v1/cases", params={"region": "beijing", "limit": 50}, headers=headers)).json()
        if first["next_cursor"]:
            await client.get("/v1/cases", params={"region": "beijing", "limit": 50, "cursor": first["next_cursor"]},
                             headers=headers)
        results["two pages via cursor"] = ((time.perf_counter() - t) * 1000,) * 2
    return results


async def queue_benchmark(stack: Any, small: int, large: int, rounds: int) -> list[str]:
    suffix = unique_suffix()
    client = create_client(stack.mongodb_url, app_name="bench")
    db = client[f"crm_cases{suffix}"]
    app = create_app(settings(stack, suffix))
    lines = []
    t = time.perf_counter()
    progress(f"generating {small:,} cases")
    await generate(db, 0, small)
    progress("measuring the queue")
    at_small = await measure_queue(app, rounds)
    gen_small = time.perf_counter() - t
    t = time.perf_counter()
    progress(f"generating {large - small:,} more cases")
    await generate(db, small, large - small)
    gen_large = time.perf_counter() - t
    progress("measuring the queue")
    at_large = await measure_queue(app, rounds)
    lines.append(f"| query | p50 at {small:,} | p99 at {small:,} | p50 at {large:,} | p99 at {large:,} | p50 ratio |")
    lines.append("|---|---|---|---|---|---|")
    for name in at_small:
        (a50, a99), (b50, b99) = at_small[name], at_large[name]
        lines.append(f"| {name} | {a50:.1f} ms | {a99:.1f} ms | {b50:.1f} ms | {b99:.1f} ms | {b50 / a50:.2f} |")
    lines.append("")
    lines.append(f"Generating the cases (documents and queue index, bulk inserts): {gen_small:.0f} s for "
                 f"{small:,} (including the first measurement), {gen_large:.0f} s for the next {large - small:,}.")
    await client.drop_database(db.name)
    await client.close()
    return lines


async def opening_benchmark(stack: Any, count: int, *, with_rates: bool = False) -> Any:
    """Cases opened per second from a backlog, next to raw consumption of the same backlog."""
    await ensure_topics(stack.bootstrap, [topics.INTAKE_CONTACTS])
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all", linger_ms=20)
    await producer.start()
    run = uuid.uuid4().hex[:6]
    try:
        for i in range(count):
            contact_id = f"{run}-{i}"
            event = make_event("crm.intake.contact.received.v1", {
                "contact_id": contact_id, "channel": random.choice(["hotline", "forum", "front_desk", "letter"]),
                "source_ref": contact_id, "region": REGIONS[i % 6], "project": f"楼盘{i % 400}", "building": str(i % 9),
                "unit": str(1000 + i), "customer_id": f"cust-{run}-{i}", "customer_match": "exact",
                "kind_hint": "complaint", "subject": "卫生间漏水", "body": "卫生间天花板漏水，请尽快派人维修。",
                "attachments": [], "received_at": datetime.now(UTC).isoformat()}, region=REGIONS[i % 6],
                subject=contact_id)
            await producer.send(topics.INTAKE_CONTACTS, event.model_dump_json().encode(), key=contact_id.encode())
        await producer.flush()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(topics.INTAKE_CONTACTS, bootstrap_servers=stack.bootstrap,
                                group_id=f"bench-raw-{run}", auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    t = time.perf_counter()
    seen = 0
    try:
        while seen < count:
            batch = await consumer.getmany(timeout_ms=1000, max_records=1000)
            seen += sum(1 for records in batch.values() for r in records if r.key and r.key.startswith(run.encode()))
            await consumer.commit()
    finally:
        await consumer.stop()
    raw_s = time.perf_counter() - t

    suffix = unique_suffix()
    app_settings = settings(stack, suffix).model_copy(update={"consumer_group_override": f"bench-cases{suffix}"})
    client = create_client(stack.mongodb_url, app_name="bench")
    cases = client[f"crm_cases{suffix}"]["cases"]
    # Progress from the group's committed offsets (committed once a contact's case is
    # stored): counting the cases collection while it grows would scan it on FerretDB and
    # steal the store from the service being measured.
    backlog_end = await topic_total(stack.bootstrap, topics.INTAKE_CONTACTS)
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap)
    await admin.start()
    t = time.perf_counter()
    first_at = None
    try:
        async with running_app(create_app(app_settings)):
            started_s = time.perf_counter() - t  # ready: store and Kafka connected
            while (handled := await committed_total(admin, app_settings.consumer_group, topics.INTAKE_CONTACTS)) \
                    < backlog_end:
                if handled and first_at is None:
                    first_at = time.perf_counter()
                await asyncio.sleep(0.2)
            done_at = time.perf_counter()
            opened = await cases.count_documents({})
            assert opened >= count, f"{opened} cases for {count} contacts"
    finally:
        await admin.close()
    # From the first contact handled to the last: joining the consumer group (a rebalance of
    # several seconds on a fresh group) is start-up, not throughput; shown separately.
    opened_s = done_at - (first_at or t)
    joined_s = (first_at or done_at) - t - started_s
    await client.drop_database(f"crm_cases{suffix}")
    await client.close()
    lines = [
        "| path | events | seconds | events/s |", "|---|---|---|---|",
        f"| raw aiokafka consume (commit per batch) | {count:,} | {raw_s:.1f} | {count / raw_s:,.0f} |",
        f"| cases service: contact.received → case opened (stored, numbered, queued, events in the outbox) "
        f"| {count:,} | {opened_s:.1f} | {count / opened_s:,.1f} |",
        "", f"Ratio (cases service / raw consume): {raw_s / opened_s:.4f}. Timed from the first contact handled "
        f"to the last (the consumer group's committed offsets; the cases are counted once at the end); before that the service took {started_s:.1f} s to start and {joined_s:.1f} s to join "
        f"its consumer group and get its partitions (CRM_CASES_CONTACT_WORKERS={app_settings.contact_workers} "
        f"consumers).",
    ]
    if with_rates:
        return lines, {"platform": count / opened_s, "raw": count / raw_s}
    return lines


async def run(stack: Any, quick: bool) -> Any:
    """The `cases` section of `python -m bench`."""
    from bench.common import Headline, Section, Stopwatch

    small, large, rounds, backlog = (2_000, 20_000, 20, 300) if quick else (10_000, 1_000_000, 50, 1_000)
    clock = Stopwatch()
    section = Section("cases", "Cases: the staff queue and opening cases",
                      sizes=f"queue at {small:,} and {large:,} cases, backlog of {backlog:,} contacts")
    queue_lines = await queue_benchmark(stack, small, large, rounds)
    opening_lines, rates = await opening_benchmark(stack, backlog, with_rates=True)
    section.headlines = [Headline("cases: opening cases from contacts", "cases service (store, number, queue, outbox)",
                                  rates["platform"], "AIOKafkaConsumer, group, commit per getmany", rates["raw"])]
    section.details = ["**The staff queue** (`GET /v1/cases`, p50/p99 over repeated calls)", "", *queue_lines, "",
                       "**Opening cases from a backlog**", "", *opening_lines]
    section.about = __doc__ or ""
    section.seconds = clock.s
    return section


async def main_async(quick: bool) -> str:
    small, large, rounds, backlog = (2_000, 20_000, 20, 300) if quick else (10_000, 1_000_000, 50, 1_000)
    t = time.perf_counter()
    stack = await asyncio.to_thread(start_stack)  # it waits for Kafka with its own event loop
    await ensure_topics(stack.bootstrap, list(topics.ALL_TOPICS))
    try:
        out = ["### Cases: the staff queue", "", *await queue_benchmark(stack, small, large, rounds), "",
               "### Cases: opening cases from a backlog of contacts", "", *await opening_benchmark(stack, backlog)]
    finally:
        for cleanup in reversed(stack._cleanup):
            cleanup()
    command = "python -m bench.cases_bench" + (" --quick" if quick else "")
    out += ["", f"Whole run: {time.perf_counter() - t:.0f} s (`{command}`)."]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(asyncio.run(main_async(args.quick)))


if __name__ == "__main__":
    main()
