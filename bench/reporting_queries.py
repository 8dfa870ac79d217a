"""The query half of the reporting benchmark: `GET /v1/kpis` and the monthly report at two
sizes, read three ways (roll-ups from the store, shard by shard from the store as a
generation without roll-ups is read, and from memory), next to the raw limit of the same
reads with plain pymongo. Part of `python -m bench reporting` (bench/reporting_bench.py)."""

from __future__ import annotations

import asyncio
import gc
import random
import time
import weakref
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from crm_contracts import topics
from crm_runtime.auth import issue_token
from crm_runtime.mongo import create_client
from crm_runtime.testing import unique_suffix
from reporting.adapters import rollups
from reporting.adapters.store import Generation, encode
from reporting.bootstrap import create_app
from reporting.domain import profiles
from reporting.domain.cells import shard_id
from reporting.domain.rollups import rollups_of
from reporting.entrypoints.kafka import consumed_topics
from reporting.settings import ReportingSettings

from bench.common import Stopwatch, percentile

SECRET = "bench-secret-of-at-least-thirty-two-bytes"
REGIONS = ["shenzhen", "shanghai", "beijing", "tianjin", "chengdu", "shenyang"]
DEPARTMENTS = ["engineering", "sales", "property", "customer_service", "design"]
CATEGORIES = ["engineering_quality", "sales_service", "customer_service", "property_management", "design"]
CHANNELS = ["hotline"] * 35 + ["forum"] * 15 + ["front_desk"] * 50 + ["letter"] * 10
CST = timezone(timedelta(hours=8))
START = datetime(2025, 1, 1, tzinfo=CST)
MONTHS = 24
PARTITIONS = 6
GOAL_MS = 100.0
QUERIES = {
    "KPIs, region and month": ("/v1/kpis", {"region": "shenzhen", "month": "2025-06"}),
    "KPIs, + department": ("/v1/kpis", {"region": "shanghai", "month": "2026-03", "department": "sales"}),
    "KPIs, + project": ("/v1/kpis", {"region": "beijing", "month": "2025-11", "project": "P02"}),
    "monthly report, JSON": ("/v1/reports/monthly-complaints", {"region": "shenzhen", "month": "2025-06"}),
    "monthly report, XLSX": ("/v1/reports/monthly-complaints",
                             {"region": "shenzhen", "month": "2025-06", "format": "xlsx"}),
}
FIRST = "KPIs, region and month"
# How the queries read, in the order measured: (label suffix, roll-ups?, from memory?)
MODES = {"rollups": ("", True, False), "shards": (", shard by shard (no roll-ups)", False, False),
         "memory": (", from memory while nothing was committed", True, True)}

Timing = tuple[float, float, float, float]  # p50 ms, p99 ms, documents read a call, CPU share


def settings(stack: Any, suffix: str) -> ReportingSettings:
    return ReportingSettings(KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap, MONGODB_URL=stack.mongodb_url,
                             CRM_DATABASE_SUFFIX=suffix, CRM_JWT_SECRET=SECRET, CRM_LOG_LEVEL="WARNING",
                             CRM_CONSUMER_GROUP=f"crm-reporting{suffix}")


def partition_of(key: str) -> int:
    return zlib.crc32(key.encode()) % PARTITIONS


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


async def store_models(db: Any, shards: dict[str, dict[str, Any]]) -> int:
    """The shards and their roll-ups, stored as the service stores them; returns the
    number of roll-ups."""
    from pymongo import ReplaceOne

    summed = [rollups.encode(d, 0) for d in rollups_of(shards.values()).values()]
    for name, docs in (("g1_shards", [encode(d) for d in shards.values()]), ("g1_rollups", summed)):
        await db[name].drop()  # stored anew at each size: inserts are what FerretDB does fast
        for i in range(0, len(docs), 1000):
            await db[name].insert_many(docs[i:i + 1000], ordered=False)
    await asyncio.sleep(1)  # the embedded FerretDB adds its _id index to a new collection within 0.5 s
    await db["g1_partitions"].bulk_write([
        ReplaceOne({"_id": f"{t}|{p}"}, {"_id": f"{t}|{p}"}, upsert=True) for t in consumed_topics()
        for p in range(PARTITIONS)])
    await Generation(db, "g1").start_rollups()  # as if every writer kept them from the start
    return len(summed)


SEEN: weakref.WeakSet[Any] = weakref.WeakSet()  # the generations the app read: their memory is of one size


class ReadCounter:
    """Counts the documents a query asks the store for (reads by _id) and remembers which,
    by wrapping the store adapter's single read."""

    def __init__(self) -> None:
        from reporting.adapters import store

        self.store, self.original = store, store.Generation._get
        self.reads = 0
        self.last: list[tuple[str, str]] = []  # (collection, _id) of the last call's reads
        counter = self

        async def counted(gen: Any, collection: Any, _id: str) -> Any:
            SEEN.add(gen)
            counter.reads += 1
            counter.last.append((collection.name, _id))
            return await counter.original(gen, collection, _id)

        store.Generation._get = counted  # type: ignore[method-assign]

    def close(self) -> None:
        self.store.Generation._get = self.original  # type: ignore[method-assign]


@contextmanager
def reading(*, rollups: bool, memory: bool) -> Iterator[None]:
    """`memory` False: as if every source partition committed since the last query (no
    document from memory: the committed offsets are reported unavailable). `rollups`
    False: read shard by shard, as a generation written without roll-ups is."""
    from reporting.adapters.freshness import Commits

    offsets, reads = Commits.offsets, Generation.reads_rollups

    async def unavailable(commits: Any, generation: str) -> None:
        return None

    async def no_rollups(gen: Any, max_age_s: float = 5.0) -> bool:
        return False

    if not memory:
        Commits.offsets = unavailable  # type: ignore[assignment,method-assign]
    if not rollups:
        Generation.reads_rollups = no_rollups  # type: ignore[method-assign]
    try:
        yield
    finally:
        Commits.offsets, Generation.reads_rollups = offsets, reads  # type: ignore[method-assign]


async def measure(app: Any, rounds: int) -> tuple[dict[str, Timing], list[tuple[str, str]]]:
    """Per query: p50 and p99 ms, documents read per call, and the share of the call's wall
    time the process spent on CPU (the rest is waiting for the store or the machine); also
    the documents the first query read in its last call."""
    headers = {"Authorization": "Bearer " + issue_token(SECRET, sub="bench", roles=["supervisor"], regions=["*"])}
    results = {}
    first_reads: list[tuple[str, str]] = []
    counter = ReadCounter()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
            for name, (path, params) in QUERIES.items():
                timings: list[float] = []
                cpu = 0.0
                for i in range(rounds + 3):
                    if i == 3:  # the first calls warm caches
                        counter.reads, timings = 0, []
                    counter.last = []
                    clock, cpu_at = Stopwatch(), time.process_time()
                    r = await client.get(path, params=params, headers=headers)
                    assert r.status_code == 200, r.text
                    timings.append(clock.s * 1000)
                    if i >= 3:
                        cpu += time.process_time() - cpu_at
                if name == FIRST:
                    first_reads = list(counter.last)
                results[name] = (percentile(timings, 50), percentile(timings, 99), counter.reads / rounds,
                                 cpu * 1000 / sum(timings))
    finally:
        counter.close()
    return results, first_reads


async def raw_reads(db: Any, reads: list[tuple[str, str]], rounds: int) -> tuple[float, float]:
    """The floor under a query: the same documents read by concurrent find_one by _id,
    plain pymongo (p50, p99 ms)."""
    timings = []
    for _ in range(rounds):
        clock = Stopwatch()
        await asyncio.gather(*(db[name].find_one({"_id": i}) for name, i in reads))
        timings.append(clock.s * 1000)
    return percentile(timings, 50), percentile(timings, 99)


async def query_benchmark(stack: Any, small: int, large: int, rounds: int,
                          progress: Any) -> tuple[list[str], dict[str, Any]]:
    s = settings(stack, unique_suffix())
    mongo = create_client(stack.mongodb_url, app_name="bench")
    db = mongo[s.database_name]
    app = create_app(s, generation="g1")  # the HTTP side only: no consumers are started
    shards: dict[str, dict[str, Any]] = {}
    measured: dict[str, dict[int, dict[str, Timing]]] = {mode: {} for mode in MODES}
    raw: dict[str, dict[int, tuple[float, float, int]]] = {"rollups": {}, "shards": {}}
    done, summed = 0, 0
    for size in (small, large):
        clock = Stopwatch()
        build_shards(done, size - done, shards)
        built_s = clock.s
        clock = Stopwatch()
        summed = await store_models(db, shards)
        progress(f"{size:,} cases: {len(shards):,} shards ({summed:,} roll-ups) built in {built_s:.0f} s, "
                 f"stored in {clock.s:.0f} s")
        done = size
        for gen in SEEN:  # what the app holds in memory is the smaller size's
            gen._cached.clear()
        # The synthetic shards held here are millions of objects a service process does not
        # hold: out of the cyclic collector's sight while the calls are timed.
        gc.collect()
        gc.freeze()
        try:
            for mode, (_, with_rollups, memory) in MODES.items():
                with reading(rollups=with_rollups, memory=memory):
                    measured[mode][size], reads = await measure(app, rounds)
                if mode in raw:
                    raw[mode][size] = (*await raw_reads(db, reads, rounds), len(reads))
        finally:
            gc.unfreeze()
    await mongo.close()
    lines = [f"| query | p50 at {small:,} ms | p99 ms | p50 at {large:,} ms | p99 ms | p99 growth "
             "| documents read a call | CPU share of the call |", "|---|---|---|---|---|---|---|---|"]
    facts: dict[str, Any] = {"small": small, "large": large, "shards": len(shards), "rollups": summed,
                             "rounds": rounds}
    for mode, (label, _, _) in MODES.items():
        p99s, growth = [], []
        for name in QUERIES:
            (a50, a99, _, _), (b50, b99, count, cpu) = measured[mode][small][name], measured[mode][large][name]
            p99s.append(b99)
            growth.append(b99 / a99)
            lines.append(f"| {name}{label} | {a50:.1f} | {a99:.1f} | {b50:.1f} | {b99:.1f} | {b99 / a99:.2f}x "
                         f"| {count:.0f} | {cpu:.0%} |")
        large_q = measured[mode][large]
        facts[mode] = {"p99": (min(p99s), max(p99s)), "growth": max(growth),
                       "reads": sorted({round(large_q[q][2]) for q in QUERIES}),
                       "cpu": max(large_q[q][3] for q in QUERIES),
                       "p50": (measured[mode][small][FIRST][0], large_q[FIRST][0]),
                       "met": max(p99s) <= GOAL_MS and max(growth) <= 2,
                       "rows": {q: (measured[mode][small][q][1], large_q[q][1], large_q[q][3]) for q in QUERIES}}
    for mode, what in (("rollups", "roll-ups"), ("shards", "shards")):
        (r50s, r99s, n), (r50, r99, _) = raw[mode][small], raw[mode][large]
        facts[mode]["raw_p99"], facts[mode]["raw_n"] = r99, n
        lines.append(f"| raw limit: the first query's {n} {what}, concurrent find_one by _id (plain pymongo) "
                     f"| {r50s:.1f} | {r99s:.1f} | {r50:.1f} | {r99:.1f} | {r99 / r99s:.2f}x | {n} | |")
    lines += ["", f"{len(shards):,} shard documents and {summed:,} roll-ups at {large:,} cases ({MONTHS} months, "
              f"{len(REGIONS)} regions, 40 projects, {PARTITIONS} partitions a topic); {rounds} calls a query, in "
              "process (ASGI). Documents read: the query's reads by _id (none read more); CPU share: the benchmark "
              "process's CPU time over the calls' wall time. The first five rows read every roll-up from the store "
              "(as when every source partition committed since the previous query: the worst case); the next five "
              "read shard by shard from the store, as a generation written without roll-ups is read (how every "
              "query read before roll-ups); the last five are the first five while no partition committed (one "
              "Kafka OffsetFetch, the documents from memory).", "",
              f"Worst p99 at {large:,} cases, roll-ups from the store: {facts['rollups']['p99'][1]:.1f} ms; "
              f"shard by shard: {facts['shards']['p99'][1]:.1f} ms; from memory: {facts['memory']['p99'][1]:.1f} ms "
              f"(goal ≤ {GOAL_MS:.0f} ms)."]
    return lines, facts


def queries_text(q: dict[str, Any]) -> str:
    """What this run's query numbers say, sentence by sentence from the numbers."""
    ro, sh, me = q["rollups"], q["shards"], q["memory"]

    def reads(mode: dict[str, Any]) -> str:
        return "/".join(str(n) for n in mode["reads"])

    def tail(mode: dict[str, Any], what: str | None) -> str:
        lo, hi = mode["p99"]
        text = f"p99 at {q['large']:,} is {lo:.0f}–{hi:.0f} ms and grows at most {mode['growth']:.2f}x: "
        if mode["met"]:
            return text + "both goals met. "
        raw, rows = mode.get("raw_p99", 0.0), mode["rows"]
        slow = [f"{name} ({b:.0f} ms, {cpu:.0%} of its wall time CPU)" for name, (_, b, cpu) in rows.items()
                if b > GOAL_MS]
        grown = [f"{name} ({a:.1f} → {b:.1f} ms)" for name, (a, b, _) in rows.items() if a * 2 < b <= GOAL_MS]
        text += f"both goals met by {len(rows) - len(slow) - len(grown)} of the {len(rows)} queries. "
        if slow:
            text += "Over 100 ms: " + "; ".join(slow) + ". "
            if what is None:
                text += ("Nothing is read from the store there: that is the query's own work in the process and "
                         "the machine's other load. ")
            else:
                text += (f"The store's own tail is part of it on this shared machine: the raw limit ({mode['raw_n']} "
                         f"{what}, plain concurrent find_one by _id, same run) has a p99 of {raw:.0f} ms. "
                         if raw >= GOAL_MS else
                         f"The store is not what stops those: the raw limit ({mode['raw_n']} {what}, plain "
                         f"concurrent find_one by _id, same run) has a p99 of {raw:.0f} ms; the rest is the query's "
                         "own work in the process and the machine's other load. ")
        if grown:
            text += ("Within 100 ms but grown over 2x: " + "; ".join(grown) + ", though a call reads the same "
                     f"documents at both sizes: a p99 of {q['rounds']} calls is about the slowest call, so that "
                     "growth is a few slower calls in this run, not more work. ")
        return text

    return (f"*Queries*: with roll-ups a call reads {reads(ro)} documents at {q['small']:,} and at {q['large']:,} "
            f"cases (one per cell and topic, every partition summed; shard by shard it reads {reads(sh)}), so its "
            f"work does not grow with the cases (first row's p50 {ro['p50'][0]:.1f} → {ro['p50'][1]:.1f} ms). "
            f"Roll-ups from the store: " + tail(ro, "roll-ups") +
            "Shard by shard from the store (a generation without roll-ups; every query before them): " +
            tail(sh, "shards") +
            "From memory (no source partition committed since the documents were read; one Kafka OffsetFetch): " +
            tail(me, None) +
            "Under steady ingest the roll-ups of topics that committed between two queries are read again: the "
            "first path's cost, for those documents.")
