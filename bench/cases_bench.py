"""Cases benchmarks on the embedded stack (FerretDB 1.24 + Kafka 4.1):

1. the staff queue (`GET /v1/cases`) at 10,000 and at 1,000,000 stored cases, p50/p99,
   and the ratio between them: the queue must stay flat as cases pile up;
2. cases opened from a backlog of `contact.received` events (handled in batches), from
   the first consumed to the last opened, next to raw aiokafka consume of the same backlog
   and the store's raw bulk insert of the same case documents, in the same run; the store
   commands per opened case by collection (and those of the single-contact path on a few
   hundred contacts, for comparison), the handler's steps and CPU per process.

    .venv/bin/python -m bench.cases_bench [--quick]

`--quick` uses 2,000 / 20,000 cases and a 500-contact backlog (a smoke run); the full run
uses 10,000 / 1,000,000 cases and a 10,000-contact backlog. BENCH_CASES_BACKLOG=N sets
another backlog; BENCH_CASES_SKIP_QUEUE=1 skips the queue part (for iterating on the
opening; a run without it says so).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from cases import handlers
from cases.adapters.metrics import CasesMetrics
from cases.bootstrap import build_deps, create_app
from cases.settings import CasesSettings
from crm_contracts import topics
from crm_contracts.events.intake import ContactReceived
from crm_devstack.pytest_plugin import start_stack
from crm_devstack.topics import ensure_topics
from crm_runtime.auth import issue_token
from crm_runtime.batching import INSERT_CHUNK
from crm_runtime.mongo import create_client
from crm_runtime.testing import make_event, running_app, start_group_at_end, unique_suffix
from prometheus_client import CollectorRegistry
from pymongo import monitoring

from bench.cases_profile import Phases, StoreCommands, cpu_sample, ferretdb_pid, what_moved
from bench.cases_queue import REGIONS, generate
from bench.common import committed_total, raw_consume, topic_total

SECRET = "bench-secret-of-at-least-thirty-two-bytes"


def settings(stack: Any, suffix: str) -> CasesSettings:
    return CasesSettings(KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap, MONGODB_URL=stack.mongodb_url,
                         CRM_DATABASE_SUFFIX=suffix, CRM_JWT_SECRET=SECRET, CRM_LOG_LEVEL="WARNING",
                         CRM_OUTBOX_POLL_INTERVAL_S=0.1)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


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


def contact_event(run: str, i: int) -> Any:
    contact_id = f"{run}-{i}"
    return make_event("crm.intake.contact.received.v1", {
        "contact_id": contact_id, "channel": random.choice(["hotline", "forum", "front_desk", "letter"]),
        "source_ref": contact_id, "region": REGIONS[i % 6], "project": f"楼盘{i % 400}", "building": str(i % 9),
        "unit": str(1000 + i), "customer_id": f"cust-{run}-{i}", "customer_match": "exact",
        "kind_hint": "complaint", "subject": "卫生间漏水", "body": "卫生间天花板漏水，请尽快派人维修。",
        "attachments": [], "received_at": datetime.now(UTC).isoformat()}, region=REGIONS[i % 6], subject=contact_id)


async def raw_insert(stack: Any, docs: list[dict[str, Any]]) -> float:
    """The store's raw bulk insert of the same case documents (with their outbox), in the
    service's chunk size, into a fresh database: seconds."""
    client = create_client(stack.mongodb_url, app_name="bench-raw")
    db = client[f"bench_raw{unique_suffix()}"]
    try:
        t = time.perf_counter()
        for i in range(0, len(docs), INSERT_CHUNK):
            await db["cases"].insert_many([dict(d) for d in docs[i:i + INSERT_CHUNK]], ordered=False)
        return time.perf_counter() - t
    finally:
        await client.drop_database(db.name)
        await client.close()


async def single_path_commands(stack: Any, count: int) -> tuple[StoreCommands, float]:
    """The path before batches (one contact at a time, `handlers.on_contact_received`),
    called directly on a fresh database: its store commands per case, for comparison."""
    suffix = unique_suffix()
    app_settings = settings(stack, suffix).model_copy(update={"consumer_group_override": f"bench-single{suffix}"})
    await start_group_at_end(stack.bootstrap, app_settings.consumer_group, [topics.INTAKE_CONTACTS,
                                                                             topics.SURVEYS_SURVEYS])
    listener = StoreCommands(app_settings.database_name)
    monitoring.register(listener)
    app = create_app(app_settings)
    run = uuid.uuid4().hex[:6]
    async with running_app(app):
        deps = build_deps(app.state.ctx, app_settings, metrics=CasesMetrics(CollectorRegistry()))
        listener.counts.clear()
        t = time.perf_counter()
        for i in range(count):
            event = contact_event(run, i)
            await handlers.on_contact_received(deps, ContactReceived.model_validate(event.data), event.id)
        seconds = time.perf_counter() - t
        await asyncio.sleep(1.0)  # the relay's share of the last cases
    client = create_client(stack.mongodb_url, app_name="bench")
    await client.drop_database(app_settings.database_name)
    await client.close()
    return listener, seconds


async def opening_benchmark(stack: Any, count: int, *, single: int = 0) -> tuple[list[str], dict[str, float]]:
    """Cases opened from a backlog, next to raw consumption and raw bulk insert of the same."""
    await ensure_topics(stack.bootstrap, [topics.INTAKE_CONTACTS])
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all", linger_ms=20)
    await producer.start()
    run = uuid.uuid4().hex[:6]
    try:
        for i in range(count):
            event = contact_event(run, i)
            await producer.send(topics.INTAKE_CONTACTS, event.model_dump_json().encode(), key=event.subject.encode())
        await producer.flush()
    finally:
        await producer.stop()
    progress(f"backlog of {count:,} contacts on the topic; raw consume")
    raw = await raw_consume(stack.bootstrap, topics.INTAKE_CONTACTS, count, f"bench-raw-{run}", max_records=500)

    suffix = unique_suffix()
    app_settings = settings(stack, suffix).model_copy(update={"consumer_group_override": f"bench-cases{suffix}"})
    listener = StoreCommands(app_settings.database_name)
    monitoring.register(listener)
    client = create_client(stack.mongodb_url, app_name="bench")
    db = client[app_settings.database_name]
    backlog_end = await topic_total(stack.bootstrap, topics.INTAKE_CONTACTS)
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap)
    await admin.start()
    phases = Phases()
    phases.install()
    pids = {"FerretDB": ferretdb_pid(stack), "Kafka": getattr(getattr(stack, "_kafka_proc", None), "pid", None)}
    progress("cases service consuming the backlog")
    t = time.perf_counter()
    try:
        async with running_app(create_app(app_settings)):
            started_s = time.perf_counter() - t
            while phases.first_at is None:
                await asyncio.sleep(0.01)
            before, cpu_before = Counter(listener.counts), cpu_sample(pids)
            # Progress from the group's committed offsets (committed once a batch is stored):
            # counting the cases while they grow would scan them on FerretDB.
            while await committed_total(admin, app_settings.consumer_group, topics.INTAKE_CONTACTS) < backlog_end:
                await asyncio.sleep(0.1)
            done_at = time.perf_counter()
            during, cpu_after = Counter(listener.counts) - before, cpu_sample(pids)
    finally:
        phases.uninstall()
        await admin.close()
    opened_s = done_at - phases.first_at
    joined_s = phases.first_at - t - started_s
    opened = await db["cases"].count_documents({})
    numbers = {d["case_number"] async for d in db["cases"].find({}, {"case_number": 1})}
    handled = await db["contacts"].count_documents({"handled": True})
    assert opened == count == len(numbers) == handled, f"{opened} cases, {len(numbers)} numbers, {handled} handled"
    progress("raw bulk insert of the same case documents")
    insert_s = await raw_insert(stack, phases.docs[:count])
    await client.drop_database(app_settings.database_name)
    await client.close()
    counted = StoreCommands(app_settings.database_name)
    counted.counts = during
    rate, consume_rate, insert_rate = count / opened_s, raw.rate, count / insert_s
    limit = min(consume_rate, insert_rate)
    lines = [
        "| path | events | seconds | events/s |", "|---|---|---|---|",
        f"| raw aiokafka consume (group, commit per getmany of 500) | {raw.count:,} | {raw.from_first_s:.2f} | "
        f"{consume_rate:,.0f} |",
        f"| raw store bulk insert of the same {count:,} case documents (insert_many of {INSERT_CHUNK}) | {count:,} | "
        f"{insert_s:.2f} | {insert_rate:,.0f} |",
        f"| cases service: contact.received → case opened (numbered, queued, SLA timer, facts, events in the "
        f"outbox), batches of {app_settings.contact_batch} | {count:,} | {opened_s:.1f} | {rate:,.1f} |",
        "", f"Ratio to the slower limit ({'raw insert' if insert_rate < consume_rate else 'raw consume'}): "
        f"**{rate / limit:.3f}**. All {count:,} opened **{opened_s:.1f} s** after the first was consumed "
        f"(goal ≤ 60 s, ≥ 167/s): {'met' if opened_s <= 60 else 'not met'}. Checked: {opened:,} cases, "
        f"{len(numbers):,} distinct case numbers, {handled:,} contacts handled, for {count:,} contacts (none "
        f"missing, none twice). Timed from the first batch reaching the handler to the group's committed offsets "
        f"reaching the end of the backlog; before that the service took {started_s:.1f} s to start and "
        f"{joined_s:.1f} s to join its group. {len(phases.batches)} batches (mean "
        f"{statistics.mean(phases.batches):.0f} contacts).",
        "", "**Store commands during the opening, by command and collection** (every command the service process "
        "sent to its database: the batch handler, the outbox relay, the timers)", "",
        "| command collection | count | per opened case |", "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in counted.rows(count)],
    ]
    if single:
        progress(f"the single-contact path on {single} contacts, for its commands")
        single_listener, single_s = await single_path_commands(stack, single)
        total = sum(single_listener.counts.values())
        lines += ["", f"Before batches (the same run, `handlers.on_contact_received` one contact at a time, called "
                  f"directly on {single} contacts): **{total / single:.1f} store commands per case** (of which "
                  f"{sum(n for (c, col), n in single_listener.counts.items() if col == 'outbox_markers' or col == 'revision_claims') / single:.1f} "
                  f"markers and claims), {single / single_s:.1f} cases/s; batched: "
                  f"**{sum(during.values()) / count:.2f}**."]
    window_cpu = {name: cpu_after[name] - cpu_before[name] for name in cpu_after}
    lines += ["", "**Where the time goes** (wall seconds of the opening window)", "",
              "| part | seconds | share of the window |", "|---|---|---|",
              *[f"| {a} | {b} | {c} |" for a, b, c in phases.rows(opened_s)],
              "", "| process | CPU seconds | cores busy |", "|---|---|---|",
              *[f"| {name} | {v:.1f} | {v / opened_s:.2f} |" for name, v in window_cpu.items()],
              "", f"On {os.cpu_count()} CPUs shared with other work on the machine.",
              "", *what_moved(phases, opened_s, window_cpu, during, count, met=opened_s <= 60)]
    return lines, {"platform": rate, "raw": limit, "consume": consume_rate, "insert": insert_rate}


def sizes(quick: bool) -> tuple[int, int, int, int, bool]:
    small, large, rounds, backlog = (2_000, 20_000, 20, 500) if quick else (10_000, 1_000_000, 50, 10_000)
    backlog = int(os.environ.get("BENCH_CASES_BACKLOG", backlog))
    return small, large, rounds, backlog, os.environ.get("BENCH_CASES_SKIP_QUEUE") == "1"


def previous_queue_lines() -> list[str]:
    """The staff queue's table of the last run that measured it, for a run that skipped it."""
    from bench.common import ROOT

    text = (ROOT / "docs" / "benchmarks.md").read_text()
    section = text.split("<!-- bench:cases begin -->", 1)[-1].split("<!-- bench:cases end -->", 1)[0]
    measured = next((line for line in section.splitlines() if line.startswith("Measured ")), "")
    if "**The staff queue**" not in section:
        return ["The staff queue part was skipped in this run (BENCH_CASES_SKIP_QUEUE=1).", ""]
    kept = section.split("**The staff queue**", 1)[1].split("**Opening cases from a backlog**", 1)[0].strip()
    kept = kept.split("\n", 1)[1] if kept.startswith("(") or kept.startswith(" (") else kept
    when = measured.split(" with ", 1)[0].removeprefix("Measured ") or "an earlier run"
    return [f"**The staff queue** (`GET /v1/cases`, p50/p99 over repeated calls; not re-run in this run, "
            f"BENCH_CASES_SKIP_QUEUE=1: as measured {when})", "", *kept.strip().splitlines(), ""]


SINGLE = 200  # contacts through the single-contact path, for its commands per case


async def run(stack: Any, quick: bool) -> Any:
    """The `cases` section of `python -m bench`."""
    from bench.common import Headline, Section, Stopwatch

    small, large, rounds, backlog, skip_queue = sizes(quick)
    clock = Stopwatch()
    section = Section("cases", "Cases: the staff queue and opening cases",
                      sizes=(f"queue at {small:,} and {large:,} cases" if not skip_queue else "queue part skipped")
                      + f", backlog of {backlog:,} contacts")
    queue_lines = [] if skip_queue else await queue_benchmark(stack, small, large, rounds)
    opening_lines, rates = await opening_benchmark(stack, backlog, single=SINGLE // (10 if quick else 1))
    slower = "raw store bulk insert of the same case documents" if rates["insert"] < rates["consume"] \
        else "AIOKafkaConsumer, group, commit per getmany"
    section.headlines = [Headline(
        "cases: opening cases from a backlog", f"cases service, batches (number, queue, SLA timer, facts, outbox); "
        f"{backlog:,} contacts", rates["platform"], f"slower limit: {slower} (raw consume {rates['consume']:,.0f}/s, "
        f"raw insert {rates['insert']:,.0f}/s)", rates["raw"])]
    section.details = [*(["**The staff queue** (`GET /v1/cases`, p50/p99 over repeated calls)", "", *queue_lines, ""]
                         if queue_lines else previous_queue_lines()),
                       "**Opening cases from a backlog**", "", *opening_lines]
    section.about = __doc__ or ""
    section.seconds = clock.s
    return section


async def main_async(quick: bool) -> str:
    small, large, rounds, backlog, skip_queue = sizes(quick)
    t = time.perf_counter()
    stack = await asyncio.to_thread(start_stack)  # it waits for Kafka with its own event loop
    await ensure_topics(stack.bootstrap, list(topics.ALL_TOPICS))
    try:
        out = []
        if not skip_queue:
            out += ["### Cases: the staff queue", "", *await queue_benchmark(stack, small, large, rounds), ""]
        opening, _ = await opening_benchmark(stack, backlog, single=SINGLE // (10 if quick else 1))
        out += ["### Cases: opening cases from a backlog of contacts", "", *opening]
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
