"""`intake` part 1: a burst of contacts over HTTP, next to raw produce of the same events."""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from crm_contracts import topics
from crm_contracts.registry import parse_event
from crm_devstack.topics import ensure_topics
from crm_runtime.auth import issue_token
from crm_runtime.mongo import create_client
from intake.domain.contacts import contact_id_for

from bench import rawhttp, store_costs
from bench.common import (
    Stopwatch,
    chinese_name,
    end_offsets,
    intake_process,
    mobile,
    num,
    per_s,
    percentile,
    ratio_text,
    raw_produce,
    table,
    unit_of,
)
from bench.intake_common import (
    CONCURRENCY,
    CONTACT_RECEIVED,
    CONTACT_TEXTS,
    EMAIL_DOMAINS,
    EMAIL_NAMES,
    INTAKE_TOPICS,
    LETTER_FORMS,
    REGION_WEIGHTS,
    REGIONS,
    SECRET,
    command_rows,
    ferret_commands,
    intake_meter,
    log_summary,
    progress,
    read_range,
    start_group_at_end,
)
from bench.profile import command_table, hook_env, read_dump


def burst_contacts(run_id: str, count: int, seed: int) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """Realistic `POST /v1/contacts` bodies (and headers): 45 % hotline (call id), 40 % front
    desk (Idempotency-Key), 15 % letters (post, fax, e-mail; letter number); 15 % are
    callers who contacted before (same name, phone and unit), never one whose earlier
    contact may still be in flight (at least 4 × the concurrency back): one person does not
    call twice in the same second."""
    rng = random.Random(seed)
    callers: list[tuple[str, str, str | None, str, tuple[str, str, str]]] = []
    out: list[tuple[dict[str, Any], dict[str, str]]] = []
    gap = 4 * CONCURRENCY
    for i in range(count):
        if len(callers) > gap and rng.random() < 0.15:
            name, phone, email, region, unit = rng.choice(callers[:-gap])
        else:
            name, phone = chinese_name(rng), mobile(rng)
            email = (f"{rng.choice(EMAIL_NAMES)}{rng.randrange(10_000)}@{rng.choice(EMAIL_DOMAINS)}"
                     if rng.random() < 0.2 else None)
            region = rng.choices(REGIONS, REGION_WEIGHTS)[0]
            unit = unit_of(rng)
            callers.append((name, phone, email, region, unit))
        project, building, room = unit
        subject, body = rng.choice(CONTACT_TEXTS)
        place = f"{project}{building}栋{room}室"
        r = rng.random()
        channel = "hotline" if r < 0.45 else "front_desk" if r < 0.85 else "letter"
        contact: dict[str, Any] = {
            "channel": channel, "region": region, "subject": subject, "body": body.format(place=place),
            "customer": {"name": name, "phone": rng.choice([phone, f"{phone[:3]} {phone[3:7]} {phone[7:]}"])},
            "project": project, "building": building, "unit": room,
        }
        headers: dict[str, str] = {}
        if channel == "hotline":
            contact["source_ref"] = f"call-{run_id}-{i:06d}"
        elif channel == "front_desk":
            headers["Idempotency-Key"] = f"desk-{run_id}-{i:06d}"
        else:
            form = rng.choice(LETTER_FORMS)
            contact["letter_form"] = form
            contact["source_ref"] = f"{form}-{run_id}-{i:06d}"
            if form == "email" and email:
                contact["customer"]["email"] = email
        out.append((contact, headers))
    return out


@dataclass
class BurstResult:
    n: int
    wall_s: float
    latencies_ms: list[float]
    statuses: Counter[int]
    errors: Counter[str]
    created: int
    contact_ids: list[str]
    on_topic_s: float | None = None
    checks: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return sum(c for s, c in self.statuses.items() if 200 <= s < 300)

    @property
    def non_2xx(self) -> int:
        return self.n - self.accepted


async def post_all(base: str, token: str, contacts: list[tuple[dict[str, Any], dict[str, str]]],
                   concurrency: int, *, label: str = "") -> BurstResult:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    ids: list[str] = []
    created = 0
    it = iter(contacts)
    done = 0
    common = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    # One keep-alive connection per worker (bench.rawhttp: httpx cost the load generator a
    # third of a core at these rates, on the machine the platform runs on).
    async def worker() -> None:
        nonlocal created, done
        connection = rawhttp.Connection(base)
        try:
            for body, headers in it:
                content = json.dumps(body, ensure_ascii=False).encode()
                t = time.perf_counter()
                answer: tuple[int, bytes] | None = None
                # A keep-alive connection the server closed while idle fails the next request
                # sent on it: retried as a client does (the contact's id is deterministic, so a
                # retry of a request that did arrive answers created=false).
                for attempt in range(3):
                    try:
                        answer = await connection.post("/v1/contacts", content, {**common, **headers})
                        break
                    except rawhttp.TransportError:
                        errors["TransportError (retried)" if attempt < 2 else "TransportError"] += 1
                if answer is None:
                    statuses[0] += 1
                    continue
                latencies.append((time.perf_counter() - t) * 1000)
                status, data = answer
                statuses[status] += 1
                if status == 202:
                    accepted = json.loads(data)
                    ids.append(accepted["contact_id"])
                    created += bool(accepted["created"])
                elif len(errors) < 5:
                    errors[f"{status}: {data[:200].decode(errors='replace')}"] += 1
                done += 1
                if label and done % 1000 == 0:
                    progress(f"{label}: {done:,}/{len(contacts):,} answered")
        finally:
            await connection.close()

    clock = Stopwatch()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall_s = clock.s
    return BurstResult(len(contacts), wall_s, latencies, statuses, errors, created, ids)


async def wait_for_topic(bootstrap: str, topic: str, start: dict[TopicPartition, int], want: int,
                         clock: Stopwatch, timeout_s: float, label: str) -> float | None:
    """Poll the topic's end offsets until `want` messages arrived after `start`; return the
    clock's reading then (None on timeout)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    tps = list(start)
    last_report = 0.0
    try:
        while clock.s < timeout_s:
            ends = await consumer.end_offsets(tps)
            got = sum(ends[tp] - start[tp] for tp in tps)
            if got >= want:
                return clock.s
            if clock.s - last_report > 15:
                last_report = clock.s
                progress(f"{label}: {got:,}/{want:,} events on {topic}")
            await asyncio.sleep(0.05)
        return None
    finally:
        await consumer.stop()


async def burst(stack: Any, run_id: str, n: int) -> tuple[float, float, list[str], dict[str, float]]:
    suffix, group = f"_bench_{run_id}_burst", f"bench-intake-burst-{run_id}"
    dump = Path(tempfile.gettempdir()) / f"bench-intake-commands-{run_id}-burst.json"
    topic = topics.INTAKE_CONTACTS
    token = issue_token(SECRET, sub="bench-front-desk", roles=["agent"], regions=REGIONS)
    warmup = burst_contacts(f"{run_id}w", CONCURRENCY, seed=7)
    contacts = burst_contacts(run_id, n, seed=11)
    await start_group_at_end(stack.bootstrap, group, INTAKE_TOPICS)
    mongo = create_client(stack.mongodb_url, app_name="bench-intake")
    try:
        async with intake_process(stack, suffix=suffix, group=group, secret=SECRET,
                                  extra_env=hook_env(dump)) as (base, log_path):
            progress(f"burst: intake up at {base} (log {log_path}); warming up with {len(warmup)} contacts")
            # Warm-up: one contact per connection (connections, lazy imports); their events
            # must be on the topic before the measured burst starts counting.
            before_warmup = await end_offsets(stack.bootstrap, topic)
            warm = await post_all(base, token, warmup, CONCURRENCY)
            if warm.accepted != len(warmup):
                progress(f"burst: warm-up answers {dict(warm.statuses)} {dict(warm.errors)}")
            await wait_for_topic(stack.bootstrap, topic, before_warmup, len(warmup), Stopwatch(), 120, "warm-up")
            start = await end_offsets(stack.bootstrap, topic)
            commands_before = await ferret_commands(mongo)
            await asyncio.sleep(1.1)  # the hook dumps every second
            by_collection_before = read_dump(dump)
            meter = intake_meter(stack, group)

            progress(f"burst: {n:,} contacts at concurrency {CONCURRENCY}")
            clock = Stopwatch()
            watcher = asyncio.create_task(wait_for_topic(stack.bootstrap, topic, start, n, clock,
                                                         max(600, n / 2), "burst"))
            result = await post_all(base, token, contacts, CONCURRENCY, label="burst")
            at_answers = await end_offsets(stack.bootstrap, topic)
            relayed_during = sum(at_answers[tp] - start[tp] for tp in start)
            progress(f"burst: all answered in {result.wall_s:.1f} s, {relayed_during:,} events on {topic} by then; "
                     "waiting for the rest")
            result.on_topic_s = await watcher
            commands_after = await ferret_commands(mongo)
            await asyncio.sleep(1.1)
            by_collection_after = read_dump(dump)
            cpu_rows = meter.rows()
            cpu_ms = {name: cores * meter.clock.s * 1000 / n for name, cores in meter.cores.items()}
            await asyncio.sleep(2)  # anything published twice would show up now
            end = await end_offsets(stack.bootstrap, topic)
        log_line = log_summary(log_path)
        events = await read_range(stack.bootstrap, start, end)
    finally:
        await mongo.drop_database(f"crm_intake{suffix}")
        await mongo.close()

    # Checks: exactly one ContactReceived per contact, nothing lost, nothing doubled.
    subjects: Counter[str] = Counter()
    event_ids = set()
    for _key, value in events:
        event, _ = parse_event(value)
        assert event.type == CONTACT_RECEIVED, event.type
        subjects[event.subject] += 1
        event_ids.add(event.id)
    # The ids intake gives these contacts (deterministic: channel + source_ref or Idempotency-Key).
    expected = {contact_id_for(c["channel"], c.get("source_ref"), h.get("Idempotency-Key")) for c, h in contacts}
    answered = set(result.contact_ids)
    lost = expected - set(subjects)
    doubled = sum(c - 1 for c in subjects.values() if c > 1)
    strangers = set(subjects) - expected
    checks = [f"{len(events):,} events on the topic after the burst for {n:,} contacts sent "
              f"({len(answered & expected):,} answered 202, {result.created:,} of them created): {len(lost):,} "
              f"missing, {doubled:,} published twice, {len(strangers):,} not from this burst, "
              f"{len(event_ids):,} distinct event ids."]
    ok = len(events) == n and not lost and not doubled and not strangers
    checks.append("**Exactly one event per contact: yes.**" if ok else "**Exactly one event per contact: NO** "
                  "(see the counts above).")
    result.checks = checks

    # Raw baseline: the very bytes intake published, to a fresh topic, same partitioning.
    raw_topic = f"bench.intake-raw.{run_id}"
    raw_topic_50 = f"bench.intake-raw50.{run_id}"
    await ensure_topics(stack.bootstrap, [raw_topic, raw_topic_50], partitions=len(start))
    size = sum(len(v) for _, v in events) / max(1, len(events))
    progress(f"burst: raw produce of {len(events):,} events of {size:,.0f} bytes")
    raw_s = await raw_produce(stack.bootstrap, raw_topic, events)
    raw_rate = per_s(len(events) - 1, raw_s)
    raw50_s = await raw_produce(stack.bootstrap, raw_topic_50, events, concurrency=CONCURRENCY)
    raw50_rate = per_s(len(events) - 1, raw50_s)
    progress("burst: what one store operation costs on this machine")
    cost_rows, costs = await store_costs.measure(stack)

    rate = per_s(result.accepted, result.wall_s)
    lat = result.latencies_ms
    topic_rate = per_s(n, result.on_topic_s) if result.on_topic_s else 0.0
    relay_during = per_s(relayed_during, result.wall_s)
    relay_after = per_s(n - relayed_during, (result.on_topic_s or 0.0) - result.wall_s)
    channels = Counter(c["channel"] for c, _ in contacts)
    rows = table(["path", "count", "seconds", "rate", "p50", "p99"], [
        (f"`POST /v1/contacts`, {CONCURRENCY} keep-alive connections, intake in its own process "
         "(answered 202)", f"{result.accepted:,}", f"{result.wall_s:.1f}", f"{num(rate)} contacts/s",
         f"{percentile(lat, 50):.0f} ms", f"{percentile(lat, 99):.0f} ms"),
        ("… until all their `contact.received` events are on `crm.intake.contacts.v1` (outbox relay)",
         f"{n:,}", f"{result.on_topic_s:.1f}" if result.on_topic_s else "timed out", f"{num(topic_rate)} events/s",
         "", ""),
        ("… of which published while the requests were running", f"{relayed_during:,}", f"{result.wall_s:.1f}",
         f"{num(relay_during)} events/s", "", ""),
        ("… and after the last answer", f"{n - relayed_during:,}",
         f"{(result.on_topic_s or 0.0) - result.wall_s:.1f}", f"{num(relay_after)} events/s", "", ""),
        (f"raw AIOKafkaProducer (acks=all, idempotent, all in flight), the same {size:,.0f}-byte events",
         f"{len(events):,}", f"{raw_s:.2f}", f"{num(raw_rate)} events/s", "", ""),
        (f"raw AIOKafkaProducer, {CONCURRENCY} tasks each `send_and_wait` one at a time", f"{len(events):,}",
         f"{raw50_s:.2f}", f"{num(raw50_rate)} events/s", "", ""),
    ])
    details = rows + [
        "",
        f"Ratio contacts/s ÷ raw produce: **{ratio_text(rate / raw_rate)}**. Responses: "
        + ", ".join(f"{c:,} × {s if s else 'transport error'}" for s, c in sorted(result.statuses.items()))
        + f"; **{result.non_2xx:,} non-2xx**" + (f" ({dict(result.errors)})" if result.errors else "") + ". "
        f"Latency: p50 {percentile(lat, 50):.0f} ms, p90 {percentile(lat, 90):.0f} ms, p99 "
        f"{percentile(lat, 99):.0f} ms, max {max(lat, default=0):.0f} ms. Mix: "
        + ", ".join(f"{c:,} {ch}" for ch, c in channels.most_common())
        + f"; regions {', '.join(REGIONS)}; a warm-up of {len(warmup)} contacts (one per connection) "
        "before the clock starts. " + " ".join(checks),
        "",
        f"**Round trips to FerretDB during the burst** (serverStatus counters, all of intake's work for the "
        f"{n:,} contacts including the outbox relay; the relay's idle polling adds a few)",
        "",
        *command_rows(commands_before, commands_after, n, "contact"),
        "",
        "The same, by collection, as intake's PyMongo sent them (a command listener in the intake process):",
        "",
        *command_table(by_collection_before, by_collection_after, n, "contact"),
        "",
        "**CPU during the burst** (from the first request until the last event is on the topic)",
        "",
        *cpu_rows,
        "",
        "**What one store operation costs here** (measured after the burst, same machine, nothing else of "
        "this benchmark running):",
        "",
        *cost_rows,
        "",
        log_line,
    ]
    diff = commands_after - commands_before
    grouped = {c: (by_collection_after["commands"][("insert", c)] - by_collection_before["commands"][("insert", c)],
                   by_collection_after["statements"][("insert", c)]
                   - by_collection_before["statements"][("insert", c)]) for c in ("contacts", "outbox_markers")}
    facts = {"burst_finds": diff["find"] / n, "burst_p50": percentile(lat, 50), "burst_p99": percentile(lat, 99),
             "docs_per_insert": sum(d for _, d in grouped.values()) / max(1, sum(c for c, _ in grouped.values())),
             "intake_ms": cpu_ms.get("intake (uvicorn)", 0.0), "ferret_ms": cpu_ms.get("FerretDB", 0.0),
             "kafka_ms": cpu_ms.get("Kafka", 0.0), "loadgen_ms": cpu_ms.get("load generator (this process)", 0.0),
             "other_cores": max(0.0, meter.cores.get("whole machine", 0.0) - sum(
                 v for k, v in meter.cores.items() if k != "whole machine")),
             "raw_rate": raw_rate, **costs}
    facts |= {"burst_commands": sum(diff.values()) / n, "burst_rate": rate, "relay_rate": topic_rate,
             "relay_during": relay_during, "relay_after": relay_after,
             "burst_wall_s": result.wall_s, "burst_topic_s": result.on_topic_s or 0.0,
             "burst_intake_cores": meter.cores.get("intake (uvicorn)", 0.0),
             "burst_ferret_cores": meter.cores.get("FerretDB", 0.0),
             "burst_machine_cores": meter.cores.get("whole machine", 0.0)}
    return rate, raw_rate, details, facts


# --------------------------------------------------------------------------- onboarding
