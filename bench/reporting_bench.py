"""Reporting benchmarks on the embedded stack (FerretDB 1.24 + Kafka 4.1):

1. `GET /v1/kpis` and `GET /v1/reports/monthly-complaints` p50/p99 at 10,000 and at
   1,000,000 cases' worth of events (with their contacts, surveys and repairs), and the
   growth ratio between them (goal: at most 2x, and p99 at most 100 ms). The read models are
   built by the service's own domain code (each case's profile summed into its partition's
   shards) and stored as the service stores them, not replayed through Kafka: a million
   cases' events would take hours to replay here;
2. `reporting rebuild` over 2,000,000 events on the platform's topics (contacts, case
   steps, surveys, repairs), next to raw aiokafka consuming the same topics in the same run
   (goal: at least 30 % of raw).

    .venv/bin/python -m bench reporting [--quick]

`--quick`: 2,000 / 20,000 cases and 100,000 events. `BENCH_REPORTING_EVENTS=N` sets the
rebuild's size.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
import uuid
import zlib
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from crm_contracts import topics
from crm_runtime.auth import issue_token
from crm_runtime.mongo import create_client
from crm_runtime.testing import unique_suffix
from reporting.adapters.store import encode
from reporting.bootstrap import create_app
from reporting.domain import profiles
from reporting.domain.cells import shard_id
from reporting.entrypoints.cli import rebuild
from reporting.entrypoints.kafka import consumed_topics
from reporting.settings import ReportingSettings

from bench.common import Headline, Section, Stopwatch, num, percentile, raw_produce

SECRET = "bench-secret-of-at-least-thirty-two-bytes"
REGIONS = ["shenzhen", "shanghai", "beijing", "tianjin", "chengdu", "shenyang"]
DEPARTMENTS = ["engineering", "sales", "property", "customer_service", "design"]
CATEGORIES = ["engineering_quality", "sales_service", "customer_service", "property_management", "design"]
CHANNELS = ["hotline"] * 35 + ["forum"] * 15 + ["front_desk"] * 50 + ["letter"] * 10
CST = timezone(timedelta(hours=8))
START = datetime(2025, 1, 1, tzinfo=CST)
MONTHS = 24
PARTITIONS = 6


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def settings(stack: Any, suffix: str) -> ReportingSettings:
    return ReportingSettings(KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap, MONGODB_URL=stack.mongodb_url,
                             CRM_DATABASE_SUFFIX=suffix, CRM_JWT_SECRET=SECRET, CRM_LOG_LEVEL="WARNING",
                             CRM_CONSUMER_GROUP=f"crm-reporting{suffix}")


def partition_of(key: str) -> int:
    return zlib.crc32(key.encode()) % PARTITIONS


# --------------------------------------------------------------- 1. queries at volume


def case_facts(i: int, rng: random.Random) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """One case's final facts, plus the other entities around it (its contact, maybe a survey
    and a repair), as the fold would leave them."""
    region = REGIONS[i % len(REGIONS)]
    project = f"P{i % 40:02d}"
    opened = START + timedelta(minutes=rng.randint(0, MONTHS * 30 * 24 * 60))
    closed = opened + timedelta(hours=rng.randint(2, 400))
    breached = rng.random() < 0.08
    case = {"region": region, "project": project, "opened_at": opened.isoformat(), "first_at": opened.isoformat(),
            "channel": rng.choice(CHANNELS), "status": "closed", "severity": "general",
            "category": rng.choice(CATEGORIES), "department": rng.choice(DEPARTMENTS), "validity": "valid",
            "first_closed_at": closed.isoformat(), "outcome": "resolved",
            "breaches": {"first_reply@1": (opened + timedelta(hours=5)).isoformat()} if breached else {},
            "lessons": ({"l": {"cause": rng.choice(["施工质量", "沟通不足", "设计缺陷", "物业响应慢"]),
                               "department": "engineering", "at": closed.isoformat()}}
                        if rng.random() < 0.2 else {})}
    others: list[tuple[str, dict[str, Any]]] = [("contact", {
        "region": region, "project": project, "channel": case["channel"], "kind": "complaint",
        "received_at": opened.isoformat(), "duplicate": False})]
    if i % 3 == 0:
        score = rng.choice([5, 5, 4, 4, 4, 3, 2, 1])
        others.append(("survey", {"region": region, "project": project, "kind": "repair_return_visit",
                                  "scheduled_at": closed.isoformat(), "completed_at": closed.isoformat(),
                                  "satisfied": score >= 4, "dissatisfied": score <= 2, "nps": rng.randint(0, 10),
                                  "scores": {"overall": score}}))
    if i % 5 == 0:
        others.append(("repair", {"region": region, "project": project, "category": rng.choice(["leak", "wall"]),
                                  "completed_at": closed.isoformat()}))
    return case, others


def build_shards(start: int, count: int, shards: dict[str, dict[str, Any]]) -> None:
    """Sum each entity's profile into the shard of its partition, as apply_batch would."""
    rng = random.Random(start)
    topic_of = {"case": topics.CASES_CASES, "contact": topics.INTAKE_CONTACTS, "survey": topics.SURVEYS_SURVEYS,
                "repair": topics.PARTNER_REPAIRS}
    for i in range(start, start + count):
        case, others = case_facts(i, rng)
        for kind, facts in [("case", case), *others]:
            partition = partition_of(f"{kind}-{i}")
            for (cell, slice_, counter), value in profiles.profile(kind, facts).items():
                sid = shard_id(cell, topic_of[kind], partition)
                doc = shards.setdefault(sid, {"_id": sid, "applied_offset": i, "counters": {}})
                slot = doc["counters"].setdefault(slice_, {})
                slot[counter] = slot.get(counter, 0) + value


async def store_shards(db: Any, shards: dict[str, dict[str, Any]]) -> None:
    from pymongo import ReplaceOne

    docs = [encode(d) for d in shards.values()]  # as the service stores them
    await db["g1_shards"].drop()  # stored anew at each size: inserts are what FerretDB does fast
    for i in range(0, len(docs), 1000):
        await db["g1_shards"].insert_many(docs[i:i + 1000], ordered=False)
    await asyncio.sleep(1)  # the embedded FerretDB adds its _id index to a new collection within 0.5 s
    await db["g1_partitions"].bulk_write([
        ReplaceOne({"_id": f"{t}|{p}"}, {"_id": f"{t}|{p}"}, upsert=True) for t in consumed_topics()
        for p in range(PARTITIONS)])


async def measure(app: Any, rounds: int) -> dict[str, tuple[float, float]]:
    headers = {"Authorization": "Bearer " + issue_token(SECRET, sub="bench", roles=["supervisor"], regions=["*"])}
    queries = {
        "KPIs, region and month": ("/v1/kpis", {"region": "shenzhen", "month": "2025-06"}),
        "KPIs, + department": ("/v1/kpis", {"region": "shanghai", "month": "2026-03", "department": "sales"}),
        "KPIs, + project": ("/v1/kpis", {"region": "beijing", "month": "2025-11", "project": "P02"}),
        "monthly report, JSON": ("/v1/reports/monthly-complaints", {"region": "shenzhen", "month": "2025-06"}),
        "monthly report, XLSX": ("/v1/reports/monthly-complaints",
                                 {"region": "shenzhen", "month": "2025-06", "format": "xlsx"}),
    }
    results = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        for name, (path, params) in queries.items():
            timings = []
            for _ in range(rounds + 3):
                clock = Stopwatch()
                r = await client.get(path, params=params, headers=headers)
                assert r.status_code == 200, r.text
                timings.append(clock.s * 1000)
            timings = timings[3:]  # the first calls warm caches
            results[name] = (percentile(timings, 50), percentile(timings, 99))
    return results


async def query_benchmark(stack: Any, small: int, large: int, rounds: int) -> tuple[list[str], float]:
    suffix = unique_suffix()
    s = settings(stack, suffix)
    mongo = create_client(stack.mongodb_url, app_name="bench")
    db = mongo[s.database_name]
    app = create_app(s, generation="g1")  # the HTTP side only: no consumers are started
    shards: dict[str, dict[str, Any]] = {}
    measured = {}
    done = 0
    for size in (small, large):
        clock = Stopwatch()
        build_shards(done, size - done, shards)
        built_s = clock.s
        clock = Stopwatch()
        await store_shards(db, shards)
        progress(f"{size:,} cases: {len(shards):,} shards built in {built_s:.0f} s, stored in {clock.s:.0f} s")
        done = size
        measured[size] = await measure(app, rounds)
    await mongo.close()
    lines = ["| query | p50 at " + f"{small:,}" + " ms | p99 ms | p50 at " + f"{large:,}" + " ms | p99 ms | p99 growth |",
             "|---|---|---|---|---|---|"]
    worst = 0.0
    for name in measured[small]:
        (a50, a99), (b50, b99) = measured[small][name], measured[large][name]
        worst = max(worst, b99)
        lines.append(f"| {name} | {a50:.1f} | {a99:.1f} | {b50:.1f} | {b99:.1f} | {b99 / a99:.2f}x |")
    lines += ["", f"{len(shards):,} shard documents at {large:,} cases ({MONTHS} months, {len(REGIONS)} regions, "
              f"40 projects, {PARTITIONS} partitions a topic); {rounds} calls a query, in process (ASGI)."]
    return lines, worst


# ------------------------------------------------------------------------- 2. rebuild


def synthetic_events(total: int) -> dict[str, list[tuple[bytes, bytes]]]:
    """About `total` contract-valid events: per case its contact, four case steps, and for
    some a survey and a repair, each keyed by its aggregate, in time order over 24 months
    (as a history is)."""
    rng = random.Random(7)
    minutes_per_case = MONTHS * 30 * 24 * 60 / (total / 5.45)
    out: dict[str, list[tuple[bytes, bytes]]] = defaultdict(list)
    produced, i = 0, 0

    def add(topic: str, type_: str, subject: str, region: str, at: datetime, data: dict[str, Any],
            id_: str | None = None) -> None:
        nonlocal produced
        event = {"specversion": "1.0", "id": id_ or str(uuid.UUID(int=rng.getrandbits(128))), "type": type_,
                 "source": "/bench", "time": at.isoformat(), "subject": subject, "region": region,
                 "datacontenttype": "application/json", "data": data}
        out[topic].append((subject.encode(), json.dumps(event, ensure_ascii=False).encode()))
        produced += 1

    while produced < total:
        region, case_id = REGIONS[i % len(REGIONS)], f"case-{i:08d}"
        opened = START + timedelta(minutes=i * minutes_per_case)
        project, dept = f"P{i % 40:02d}", rng.choice(DEPARTMENTS)
        add(topics.INTAKE_CONTACTS, "crm.intake.contact.received.v1", f"k-{i}", region, opened, {
            "contact_id": f"k-{i}", "channel": rng.choice(CHANNELS), "source_ref": f"k-{i}", "region": region,
            "project": project, "customer_match": "unknown", "kind_hint": "complaint", "subject": "s", "body": "b",
            "received_at": opened.isoformat()})
        base = {"case_id": case_id, "case_number": f"SZ-2026-{i:06d}", "region": region, "department": dept,
                "severity": "general", "category": rng.choice(CATEGORIES)}
        steps = [("opened", {"status": "received", "channel": "hotline", "project": project}),
                 ("assigned", {"status": "classified"}),
                 ("progress-reported", {"status": "handling", "message_to_customer": "m", "first_reply": True}),
                 ("closed", {"status": "closed", "outcome": "resolved"})]
        for seq, (kind, fields) in enumerate(steps, start=1):
            at = opened + timedelta(hours=seq * 7)
            add(topics.CASES_CASES, f"crm.cases.case.{kind}.v1", case_id, region, at,
                {**base, **fields, "sequence": seq, "occurred_at": at.isoformat()}, id_=f"{case_id}:{seq}")
        if i % 4 == 0:
            score = rng.choice([5, 4, 4, 2])
            done = opened + timedelta(days=3)
            add(topics.SURVEYS_SURVEYS, "crm.surveys.survey.completed.v1", f"s-{i}", region, done, {
                "survey_id": f"s-{i}", "kind": "repair_return_visit", "customer_id": "c", "work_order_id": f"w-{i}",
                "project": project, "due_at": done.isoformat(), "scores": {"overall": score}, "nps": 9,
                "satisfied": score >= 4, "dissatisfied": score <= 2, "completed_at": done.isoformat()})
        if i % 5 == 0:
            add(topics.PARTNER_REPAIRS, "crm.partner.repair.work-order-completed.v1", f"w-{i}", region, opened, {
                "work_order_id": f"w-{i}", "customer_id": "c", "project": project, "building": "1", "unit": "1",
                "category": "leak", "completed_at": opened.isoformat()})
        i += 1
    return out


async def raw_consume_all(bootstrap: str, names: list[str], count: int, group: str) -> float:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(*names, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    seen, first = 0, None
    try:
        while seen < count:
            batch = await consumer.getmany(timeout_ms=1000, max_records=2000)
            if batch and first is None:
                first = time.perf_counter()
            seen += sum(len(v) for v in batch.values())
            if batch:
                await consumer.commit()
        return time.perf_counter() - (first or time.perf_counter())
    finally:
        await consumer.stop()


async def rebuild_benchmark(stack: Any, total: int) -> tuple[list[str], float, float]:
    clock = Stopwatch()
    events = await asyncio.to_thread(synthetic_events, total)
    count = sum(len(v) for v in events.values())
    progress(f"{count:,} events built in {clock.s:.0f} s")
    clock = Stopwatch()
    for topic, messages in events.items():
        await raw_produce(stack.bootstrap, topic, messages, linger_ms=20, max_batch_size=512 * 1024)
    progress(f"produced in {clock.s:.0f} s")
    del events
    raw_s = await raw_consume_all(stack.bootstrap, list(consumed_topics()), count, f"bench-raw-{uuid.uuid4().hex[:6]}")
    progress(f"raw consume: {count / raw_s:,.0f}/s")
    s = settings(stack, unique_suffix())
    result = await rebuild(s, progress=True, follow_s=0)
    progress(f"rebuild: {result.events:,} events in {result.seconds:.0f} s")
    rate, raw = result.events_per_s, count / raw_s
    lines = ["| path | events | seconds | events/s |", "|---|---|---|---|",
             f"| raw aiokafka consume (group, commit per getmany of 2,000) | {count:,} | {raw_s:.1f} | {num(raw)} |",
             f"| `reporting rebuild` (fresh generation, switch at lag 0) | {result.events:,} | {result.seconds:.1f} "
             f"| {num(rate)} |",
             "", f"Ratio rebuild / raw: {rate / raw:.3f} (goal ≥ 0.30). The rebuild's time counts from its start "
             "(joining its group included) to the switch."]
    return lines, rate, raw


async def run(stack: Any, quick: bool) -> Section:
    """The `reporting` section of `python -m bench`."""
    small, large, rounds = (2_000, 20_000, 20) if quick else (10_000, 1_000_000, 50)
    total = int(os.environ.get("BENCH_REPORTING_EVENTS", 100_000 if quick else 2_000_000))
    clock = Stopwatch()
    section = Section("reporting", "Reporting: KPI queries at volume and a rebuild",
                      sizes=f"queries at {small:,} and {large:,} cases, rebuild of {total:,} events")
    query_lines, worst = await query_benchmark(stack, small, large, rounds)
    rebuild_lines, rate, raw = await rebuild_benchmark(stack, total)
    section.headlines = [Headline("reporting: rebuild from every topic", "reporting rebuild (entities, shards, ids)",
                                  rate, "AIOKafkaConsumer, group, commit per getmany", raw)]
    section.details = ["**KPI and report queries** (p50/p99 over repeated calls)", "", *query_lines,
                       f"Worst p99 at {large:,} cases: {worst:.1f} ms (goal ≤ 100 ms).", "",
                       "**Rebuild**", "", *rebuild_lines]
    section.about = __doc__ or ""
    section.seconds = clock.s
    return section
