"""`intake`: contacts in over HTTP, and a region's customer archive absorbed, next to raw aiokafka.

1. *Burst*: N contacts (front desk, hotline, letters; Chinese text, names, mobiles, a share
   of repeat callers) `POST /v1/contacts` at concurrency 50 (keep-alive, `bench.rawhttp`) against
   intake running as its own uvicorn process; contacts/s, p50/p99, non-2xx, and the time
   until all N `crm.intake.contact.received.v1` are on `crm.intake.contacts.v1` (checked:
   exactly N, one per contact). Next to it: a plain AIOKafkaProducer sending the same N
   events (the very bytes intake published) to a fresh topic.
2. *Onboarding*: M `crm.partner.customer.upserted.v1` produced untimed onto
   `crm.partner.customers.v1`; then intake (a fresh database and consumer group) absorbs
   them until its group has committed all M, checked by counting its customer directory.
   Next to it: a plain AIOKafkaConsumer in a group reading the same M.

Sizes: 10,000 / 1,000,000 (`--quick`: 1,000 / 100,000). For ad-hoc runs the environment
variables BENCH_INTAKE_BURST and BENCH_INTAKE_ONBOARDING override them.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata
from crm_contracts import topics
from crm_contracts.events.partner import CustomerUpserted
from crm_contracts.regions import KNOWN_REGIONS
from crm_contracts.registry import parse_event
from crm_devstack.topics import ensure_topics
from crm_runtime.auth import issue_token
from crm_runtime.batching import UPDATE_CHUNK
from crm_runtime.mongo import create_client
from intake.adapters.store import MongoDirectory
from intake.domain.contacts import contact_id_for
from intake.domain.customers import DirectoryEntry
from intake.handlers import directory_entry

from bench import rawhttp, store_costs
from bench.common import (
    Headline,
    Section,
    Stopwatch,
    chinese_name,
    committed_total,
    end_offsets,
    intake_process,
    mobile,
    num,
    per_s,
    percentile,
    ratio_text,
    raw_consume,
    raw_produce,
    table,
    unit_of,
)
from bench.profile import CpuMeter, command_table, find_pid, hook_env, proc_cpu_s, read_dump

SECRET = "bench-intake-secret-of-at-least-thirty-two-bytes"
CONTACT_RECEIVED = "crm.intake.contact.received.v1"
CUSTOMER_UPSERTED = "crm.partner.customer.upserted.v1"
CONCURRENCY = 50
FULL_BURST, FULL_ONBOARDING = 10_000, 1_000_000
# The regions of the burst and of the archive, roughly by size.
REGIONS = ["shenzhen", "shanghai", "beijing", "chengdu", "hangzhou"]
REGION_WEIGHTS = [35, 25, 20, 12, 8]
# Topics intake's consumer group reads: a fresh group starts at their current ends, so
# whatever earlier benchmarks of the same stack left there is not part of the measurement.
INTAKE_TOPICS = (topics.PARTNER_CUSTOMERS, topics.PARTNER_HOTLINE, topics.PARTNER_FORUM, topics.PARTNER_UNITS)

# (kind, subject, body); {place} is the project, building and unit.
CONTACT_TEXTS = [
    ("卫生间天花板漏水", "{place}卫生间天花板漏水，已经三天了，楼上邻居不在家，请尽快派人维修。"),
    ("地下车库照明不亮", "{place}业主反映地下车库B2层照明长期不亮，晚上停车很不安全，希望物业尽快处理。"),
    ("咨询交房时间", "请问{place}的交房时间是什么时候？需要准备哪些材料，是否可以委托家人办理？"),
    ("建议增加充电桩", "建议小区增加新能源汽车充电桩，目前车位紧张，{place}业主希望物业统一规划。"),
    ("楼上装修噪音", "{place}楼上装修每天早上七点就开始电钻，严重影响老人和孩子休息，投诉多次无人处理。"),
    ("表扬保安", "感谢小区保安李师傅，昨晚帮助{place}的老人把行李搬上楼，服务非常热情，特此表扬。"),
    ("电梯频繁故障", "{place}所在楼栋电梯本月已经故障三次，有一次困人二十分钟，要求彻底检修并给出说明。"),
    ("外墙瓷砖脱落", "{place}外墙瓷砖脱落，砸坏了楼下停放的车辆，存在严重安全隐患，请立即处理。"),
    ("物业费收费标准", "咨询{place}物业费的收费标准，为什么今年比去年上涨了，有没有公示文件？"),
    ("窗户渗水", "{place}主卧窗户密封不严，下雨就渗水，墙面已经发霉，要求开发商保修期内维修。"),
    ("门禁卡无法使用", "{place}的门禁卡突然无法使用，去物业中心补办说要等一周，希望加快办理。"),
    ("垃圾清运不及时", "小区垃圾站清运不及时，{place}附近气味很大，夏天蚊虫多，请增加清运次数。"),
]
LETTER_FORMS = ["post", "fax", "email"]
EMAIL_NAMES = ("wang", "li", "zhang", "liu", "chen", "yang", "huang", "zhao", "wu", "zhou", "xu", "sun", "ma")
EMAIL_DOMAINS = ("qq.com", "163.com", "126.com", "sina.com", "foxmail.com", "outlook.com")


def code_under_test() -> str:
    """Which code ran: the commit, and whether services/ or libs/ differed from it."""
    import subprocess

    import intake

    from bench.common import ROOT

    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip() or "?"
    if not os.path.realpath(intake.__file__).startswith(str(ROOT) + os.sep):
        return f"services/ and libs/ of commit {head}, exported (`git archive`) and put first on PYTHONPATH"
    dirty = subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", "HEAD", "--", "services", "libs"]).returncode
    return f"commit {head}" + (" with uncommitted changes in services/ or libs/" if dirty else "")


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] intake: {message}", file=sys.stderr, flush=True)


def size_from_env(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value.replace("_", "")) if value else default


# ------------------------------------------------------------------------ Kafka helpers


async def start_group_at_end(bootstrap: str, group: str, topic_names: tuple[str, ...]) -> dict[str, int]:
    """Commit a fresh group's offsets at the current end of `topic_names`, so it reads only
    what is produced from now on (its consumers otherwise start from the earliest offset).
    Returns each topic's total end offset."""
    ends: dict[TopicPartition, int] = {}
    for name in topic_names:
        ends.update(await end_offsets(bootstrap, name))
    to_commit = {tp: OffsetAndMetadata(offset, "") for tp, offset in ends.items() if offset > 0}
    if to_commit:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign(list(to_commit))
            await consumer.commit(to_commit)
        finally:
            await consumer.stop()
    return {name: sum(o for tp, o in ends.items() if tp.topic == name) for name in topic_names}


async def read_range(bootstrap: str, start: dict[TopicPartition, int],
                     end: dict[TopicPartition, int]) -> list[tuple[bytes, bytes]]:
    """Every (key, value) between two sets of offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    out: list[tuple[bytes, bytes]] = []
    try:
        wanted = [tp for tp in end if end[tp] > start.get(tp, 0)]
        if not wanted:
            return out
        consumer.assign(wanted)
        for tp in wanted:
            consumer.seek(tp, start.get(tp, 0))
        remaining = {tp: end[tp] - start.get(tp, 0) for tp in wanted}
        while any(v > 0 for v in remaining.values()):
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset < end[tp]:
                        out.append((record.key or b"", record.value or b""))
                        remaining[tp] -= 1
        return out
    finally:
        await consumer.stop()


async def ferret_commands(client: Any) -> Counter[str]:
    """FerretDB's per-command counters (serverStatus.metrics.commands): round trips."""
    status = await client.admin.command("serverStatus")
    return Counter({name: c.get("total", 0) for name, c in status.get("metrics", {}).get("commands", {}).items()})


def command_rows(before: Counter[str], after: Counter[str], per: int, what: str) -> list[str]:
    diff = after - before
    main = [c for c in ("find", "insert", "update", "delete", "aggregate", "count") if diff[c]]
    other = sum(v for c, v in diff.items() if c not in main)
    rows = [(c, f"{diff[c]:,}", f"{diff[c] / per:.2f}") for c in main]
    rows.append(("all commands" + (f" (incl. {other:,} others)" if other else ""), f"{sum(diff.values()):,}",
                 f"{sum(diff.values()) / per:.2f}"))
    return table(["FerretDB command", "count", f"per {what}"], rows)


# Their old names here (bench.runtime_consumer imports them); the helpers live in bench.profile.
_find_pid, _proc_cpu_s = find_pid, proc_cpu_s


def intake_meter(stack: Any, group: str) -> CpuMeter:
    """CPU of intake (found by its consumer group once it runs), FerretDB, Kafka, this process."""
    return CpuMeter(stack, service=("intake (uvicorn)", lambda c, e: b"intake.bootstrap:create_app" in c
                                    and f"CRM_CONSUMER_GROUP={group}\0".encode() in e + b"\0"))


def log_summary(log_path: Any) -> str:
    """What intake's own log says went wrong (warnings and worse), counted by message."""
    counts: Counter[str] = Counter()
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return "intake's log could not be read"
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("level") in ("WARNING", "ERROR", "CRITICAL"):
            message = " ".join(str(record.get("message", "")).split())
            counts[f"{record['level']} {message[:90]}"] += 1
    if not counts:
        return f"intake's log ({len(lines):,} lines): no warnings or errors."
    return (f"intake's log ({len(lines):,} lines), warnings and errors: "
            + "; ".join(f"{c:,} × `{m}`" for m, c in counts.most_common(6)) + ".")


# -------------------------------------------------------------------------------- burst


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


def customer_events(run_id: str, start: int, count: int, seed: int) -> list[tuple[bytes, bytes]]:
    """`crm.partner.customer.upserted.v1` as a partner's archive sends them: one or two
    mobiles, an e-mail for 30 %, one unit (two for 15 %) in a project of the customer's
    region, consent, a birthday for some."""
    rng = random.Random(seed + start)
    sent = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    out = []
    for i in range(start, start + count):
        region = rng.choices(REGIONS, REGION_WEIGHTS)[0]
        customer_id = f"C{KNOWN_REGIONS[region].case_prefix}{run_id}{i:07d}"
        name = chinese_name(rng)
        phones = [mobile(rng) for _ in range(2 if rng.random() < 0.2 else 1)]
        city = KNOWN_REGIONS[region].name_zh
        units = []
        for _ in range(2 if rng.random() < 0.15 else 1):
            project, building, room = unit_of(rng)
            units.append({"project": f"{city}{project}", "building": building, "unit": room})
        data: dict[str, Any] = {
            "customer_id": customer_id, "name": name, "phones": phones,
            "preferred_language": "zh-CN" if rng.random() < 0.97 else "en",
            "consent": {"sms": rng.random() < 0.8, "email": rng.random() < 0.4, "letter": rng.random() < 0.2},
            "units": units,
        }
        if rng.random() < 0.3:
            data["email"] = f"{rng.choice(EMAIL_NAMES)}{rng.randrange(1_000_000)}@{rng.choice(EMAIL_DOMAINS)}"
        if rng.random() < 0.5:
            data["birthday"] = (date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 55))).isoformat()
        event = {
            "specversion": "1.0", "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "type": CUSTOMER_UPSERTED, "source": "/partners/sales-crm",
            "time": (sent + timedelta(milliseconds=i)).isoformat(), "subject": customer_id, "region": region,
            "datacontenttype": "application/json", "data": data,
        }
        out.append((customer_id.encode(), json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()))
    return out


class KeyCensus:
    """The directory keys of the archive, batch by batch of 500 in the order produced (intake's
    own batches follow partitions, so this is close, not exact): how many a batch finds
    already stored. `MongoDirectory.save_many` inserts new keys in one `insert_many` but
    adds a customer to an existing key with an `update_one` of its own."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.total = 0
        self.shared: Counter[str] = Counter()  # by kind: phone, email, name-unit, surname-unit
        self.shared_by_half = [0, 0]
        self.total_by_half = [0, 0]

    def add(self, events: list[tuple[bytes, bytes]], *, second_half: bool) -> None:
        for b in range(0, len(events), 500):
            batch: set[str] = set()
            for _, value in events[b:b + 500]:
                event = json.loads(value)
                data = event["data"]
                batch.update(DirectoryEntry.build(
                    data["customer_id"], event["region"], names=[data["name"]], phones=data["phones"],
                    emails=[data.get("email")], units=[(u["project"], u["building"], u["unit"]) for u in data["units"]],
                ).lookup_keys())
            old = batch & self.seen
            for key in old:
                self.shared[key.split(":", 1)[0]] += 1
            self.total += len(batch)
            self.shared_by_half[second_half] += len(old)
            self.total_by_half[second_half] += len(batch)
            self.seen |= batch

    def share(self, half: int) -> float:
        return self.shared_by_half[half] / self.total_by_half[half] if self.total_by_half[half] else 0.0


async def raw_store_insert(stack: Any, run_id: str, m: int, chunk: int) -> float:
    """The store's own limit for onboarding: the very documents the directory ends with
    (each customer, and each lookup key with its customers) bulk-inserted into a fresh
    database, 1,000 to a command, nothing read. Returns the seconds."""
    by_key: dict[str, list[str]] = {}
    customers: list[dict[str, Any]] = []
    for start in range(0, m, chunk):
        for _, value in customer_events(run_id, start, min(chunk, m - start), seed=23):
            event = json.loads(value)
            entry = directory_entry(CustomerUpserted.model_validate(event["data"]), event["region"],
                                    datetime.fromisoformat(event["time"]))
            customers.append({"_id": entry.customer_id, **MongoDirectory._document(entry)})
            for key in entry.lookup_keys():
                by_key.setdefault(key, []).append(entry.customer_id)
    keys = [{"_id": k, "customer_ids": v} for k, v in by_key.items()]
    mongo = create_client(stack.mongodb_url, app_name="bench-intake-raw-store")
    db = mongo[f"bench_raw_directory_{run_id}"]
    try:
        clock = Stopwatch()
        for name, docs in (("customers", customers), ("customer_keys", keys)):
            for i in range(0, len(docs), 1000):
                await db[name].insert_many(docs[i:i + 1000], ordered=False)
        return clock.s
    finally:
        await mongo.drop_database(db.name)
        await mongo.close()


async def onboarding(stack: Any, run_id: str, m: int) -> tuple[float, float, float, list[str], dict[str, float]]:
    suffix, group = f"_bench_{run_id}_onboarding", f"bench-intake-onboarding-{run_id}"
    dump = Path(tempfile.gettempdir()) / f"bench-intake-commands-{run_id}-onboarding.json"
    raw_group = f"bench-raw-onboarding-{run_id}"
    topic = topics.PARTNER_CUSTOMERS
    dlq = topics.dlq_topic("intake")
    chunk = 50_000

    # Both groups start at the topic's current end: they read exactly the M events below.
    base = (await start_group_at_end(stack.bootstrap, group, INTAKE_TOPICS))[topic]
    await start_group_at_end(stack.bootstrap, raw_group, (topic,))
    dlq_before = sum((await end_offsets(stack.bootstrap, dlq)).values())

    progress(f"onboarding: producing {m:,} customer.upserted events (untimed)")
    keys = KeyCensus()
    setup = Stopwatch()
    sizes = 0
    samples: dict[str, str] = {}
    sample_rng = random.Random(5)
    for start in range(0, m, chunk):
        events = customer_events(run_id, start, min(chunk, m - start), seed=23)
        if start == 0:
            for _, value in events[:500]:
                parse_event(value)  # they are valid per the contract (intake's DLQ is checked too)
        sizes += sum(len(v) for _, v in events)
        keys.add(events, second_half=start >= m // 2)
        for key, value in sample_rng.sample(events, min(len(events), 20)):
            samples[key.decode()] = json.loads(value)["data"]["name"]
        await raw_produce(stack.bootstrap, topic, events, linger_ms=20)
        progress(f"onboarding: {start + len(events):,}/{m:,} produced")
    produce_s = setup.s
    target = base + m
    size = sizes / m

    progress(f"onboarding: raw consume of the {m:,}")
    raw = await raw_consume(stack.bootstrap, topic, m, raw_group)
    progress(f"onboarding: raw consume {num(raw.rate)} events/s; raw store bulk insert of the same documents")
    store_s = await raw_store_insert(stack, run_id, m, chunk)
    store_rate = per_s(m, store_s)
    progress(f"onboarding: raw store bulk insert {num(store_rate)} customers/s")

    mongo = create_client(stack.mongodb_url, app_name="bench-intake")
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap)
    await admin.start()
    db = mongo[f"crm_intake{suffix}"]
    try:
        commands_before = await ferret_commands(mongo)
        progress(f"onboarding: starting intake on {m:,} waiting events")
        meter = intake_meter(stack, group)
        samples_at: list[tuple[float, int]] = []
        clock = Stopwatch()
        async with intake_process(stack, suffix=suffix, group=group, secret=SECRET,
                                  extra_env=hook_env(dump)) as (_base, log_path):
            ready_s = clock.s
            first: tuple[float, int] | None = None
            last_value, last_change, last_report = base, clock.s, clock.s
            while True:
                committed = await committed_total(admin, group, topic)
                now = clock.s
                if committed != last_value:
                    last_value, last_change = committed, now
                    samples_at.append((now, committed - base))
                if first is None and committed > base:
                    first = (now, committed - base)
                if committed >= target:
                    break
                if now - last_report >= 30:
                    last_report = now
                    done = committed - base
                    rate = per_s(done - (first[1] if first else 0), now - first[0]) if first else 0.0
                    eta = f", about {(m - done) / rate / 60:.0f} min to go" if rate else ""
                    progress(f"onboarding: {done:,}/{m:,} committed after {now:.0f} s, {num(rate)} events/s{eta}")
                if now - last_change > 300:
                    raise RuntimeError(f"intake stalled at {committed - base:,}/{m:,} for 5 min: "
                                       f"{log_path.read_text()[-3000:]}")
                await asyncio.sleep(0.5)
            absorb_s = clock.s
            commands_after = await ferret_commands(mongo)
            await asyncio.sleep(1.1)  # the hook dumps every second
            by_collection_after = read_dump(dump)
            cpu_rows = meter.rows()
        log_line = log_summary(log_path)
        progress(f"onboarding: all {m:,} committed in {absorb_s:.0f} s; counting the directory")
        count_clock = Stopwatch()
        stored = await db["customers"].count_documents({})
        count_s = count_clock.s
        sampled_ok = 0
        for cid, name in samples.items():  # by `_id` one at a time: FerretDB pushes down nothing else
            doc = await db["customers"].find_one({"_id": cid})
            sampled_ok += bool(doc and name in doc.get("names", []))
        dlq_after = sum((await end_offsets(stack.bootstrap, dlq)).values())
    finally:
        await admin.close()
        await mongo.drop_database(f"crm_intake{suffix}")
        await mongo.close()

    assert first is not None
    steady_s = absorb_s - first[0]
    # The rate over the first and the second half of the events: does it fall as the directory grows?
    half = next((t, v) for t, v in samples_at if v >= m // 2)
    if half[1] <= first[1]:  # a tiny run: the first commit already covered half
        half = first
    first_half = per_s(half[1] - first[1], half[0] - first[0])
    second_half = per_s(m - half[1], absorb_s - half[0])
    whole_rate = per_s(m, absorb_s)
    # From the first commit on; a tiny run whose first commit covered most events has no steady part.
    platform_rate = per_s(m - first[1], steady_s) if first[1] < m // 2 else whole_rate
    checks = (f"Directory checked: `count_documents({{}})` on `customers` = **{stored:,}** (of {m:,} distinct "
              f"customers; {count_s:.0f} s for the count, a full scan on FerretDB), {sampled_ok} of "
              f"{len(samples)} sampled customers found by `_id` with their name, "
              f"{dlq_after - dlq_before:,} events dead-lettered.")
    rows = table(["path", "events", "seconds", "events/s", "÷ raw"], [
        (f"raw AIOKafkaConsumer (group, commit per getmany batch of 500), {size:,.0f}-byte events", f"{m:,}",
         f"{raw.from_first_s:.1f}", num(raw.rate), "1"),
        ("intake: BatchSubscription (500 per batch) → `upsert_customers` → directory, from its first committed "
         "batch to the last", f"{m - first[1]:,}", f"{steady_s:.1f}", num(platform_rate),
         ratio_text(platform_rate / raw.rate)),
        ("… from starting the intake process (imports, joining the group) to the last commit", f"{m:,}",
         f"{absorb_s:.1f}", num(whole_rate), ratio_text(whole_rate / raw.rate)),
        ("raw store: the same customers and their lookup keys, as the directory ends up, `insert_many` of 1,000 "
         "into a fresh database", f"{m:,}", f"{store_s:.1f}", num(store_rate), ratio_text(store_rate / raw.rate)),
    ])
    limit = min(raw.rate, store_rate)
    details = rows + [
        "",
        f"Ratio intake ÷ the slower limit ({'the store' if store_rate < raw.rate else 'Kafka'}, {num(limit)}/s): "
        f"**{ratio_text(platform_rate / limit)}**; intake ÷ raw consume {ratio_text(platform_rate / raw.rate)}. "
        "Intake was ready (HTTP) "
        f"{ready_s:.1f} s after its start and committed its first batch of {first[1]:,} after {first[0]:.1f} s. "
        f"Untimed set-up: {m:,} events ({size:,.0f} bytes each on average, {len(REGIONS)} regions) generated and "
        f"produced in {produce_s:.0f} s. Raw consumer: joining the group and the first fetch took "
        f"{raw.from_start_s - raw.from_first_s:.1f} s, not counted. {checks} Rate over the first half of the "
        f"events {num(first_half)}/s, over the second half {num(second_half)}/s.",
        "",
        f"**Round trips to FerretDB while absorbing** (serverStatus counters; {m / 500:,.0f} batches of 500)",
        "",
        *command_rows(commands_before, commands_after, m // 500, "batch of 500"),
        "",
        "The same, by collection, as intake's PyMongo sent them (a command listener in the intake process):",
        "",
        *command_table({"commands": Counter(), "statements": Counter()}, by_collection_after, m / 500,
                       "batch of 500"),
        "",
        "**CPU while absorbing** (from starting intake to the last commit)",
        "",
        *cpu_rows,
        "",
        log_line,
    ]
    if m < FULL_ONBOARDING:
        minutes = FULL_ONBOARDING / second_half / 60 if second_half else 0
        details += ["", f"**The full size was not run.** At the rate of the second half ({num(second_half)}/s), "
                    f"absorbing {FULL_ONBOARDING:,} customers would take at least {minutes:,.0f} min (more: the rate "
                    f"falls as the directory grows, {num(first_half)}/s → {num(second_half)}/s here)."]
    if stored != m or sampled_ok != len(samples) or dlq_after != dlq_before:
        details.append("")
        details.append("**The directory does not hold every customer: see the check above.**")
    diff = commands_after - commands_before
    facts = {"batch_commands": sum(diff.values()) / (m / 500), "batch_finds": diff["find"] / (m / 500),
             "onboard_rate": platform_rate, "first_half": first_half, "second_half": second_half,
             "keys_total": keys.total, "keys_shared": sum(keys.shared.values()),
             "keys_shared_first": keys.share(0), "keys_shared_second": keys.share(1),
             "keys_shared_surname": keys.shared["surname-unit"] / max(1, sum(keys.shared.values())),
             "onboard_intake_cores": meter.cores.get("intake (uvicorn)", 0.0),
             "onboard_ferret_cores": meter.cores.get("FerretDB", 0.0)}
    facts["onboard_store_rate"] = store_rate
    return platform_rate, raw.rate, store_rate, details, facts


# ------------------------------------------------------------------------------ section


async def run(stack: Any, quick: bool) -> Section:
    n = size_from_env("BENCH_INTAKE_BURST", FULL_BURST // 10 if quick else FULL_BURST)
    m = size_from_env("BENCH_INTAKE_ONBOARDING", FULL_ONBOARDING // 10 if quick else FULL_ONBOARDING)
    clock = Stopwatch()
    code = code_under_test()  # now: the work tree may move on while the benchmark runs
    run_id = uuid.uuid4().hex[:6]
    section = Section("intake", "Intake: a burst of contacts, and onboarding a customer archive",
                      sizes=f"burst of {n:,} contacts at concurrency {CONCURRENCY}, {m:,} customers onboarded")
    burst_rate, burst_raw, burst_rows, facts = await burst(stack, run_id, n)
    onboard_rate, onboard_raw, onboard_store, onboard_rows, more = await onboarding(stack, run_id, m)
    facts.update(more)
    section.headlines = [
        Headline("intake: burst of contacts", f"`POST /v1/contacts` ×{n:,}, {CONCURRENCY} concurrent, "
                 "intake process (store, recognise, outbox)", burst_rate,
                 "AIOKafkaProducer acks=all, idempotent, pipelined (same events)", burst_raw),
        Headline("intake: onboarding customers", f"{m:,} customer.upserted → intake's directory "
                 "(batches of 500)", onboard_rate,
                 f"slower of AIOKafkaConsumer, group, commit per getmany ({num(onboard_raw)}/s) and the store's "
                 f"bulk insert of the same documents ({num(onboard_store)}/s)", min(onboard_raw, onboard_store)),
    ]
    section.details = [
        f"Code measured: {code} (at the start of the run).", "",
        f"**Burst: {n:,} contacts over HTTP**", "", *burst_rows, "",
        f"**Onboarding: {m:,} customers from `crm.partner.customers.v1`**", "", *onboard_rows,
    ]
    section.about = about(facts)
    section.seconds = clock.s
    return section


def about(f: dict[str, float]) -> str:
    """What the section measures, and why the numbers are what they are (from this run's counters)."""
    lag = f["burst_topic_s"] - f["burst_wall_s"]
    return (
        "**What `intake` measures.** *Burst*: intake runs as `make run` runs it (`uvicorn --factory "
        "intake.bootstrap:create_app`, one process, INFO logs to a file) on a fresh database and consumer group; "
        f"{CONCURRENCY} keep-alive connections (a lean asyncio HTTP/1.1 client, `bench.rawhttp`) post realistic contacts as fast as intake answers. The clock runs from "
        "the first request to the last answer (contacts/s), and on until the last `contact.received` is on "
        "`crm.intake.contacts.v1`; then the new part of the topic is read back and checked against the contacts "
        "sent (their ids are deterministic: channel + `source_ref` or `Idempotency-Key`). The baseline produces "
        "the very bytes intake published. *Onboarding*: the customer events are produced before intake starts. "
        "Intake's consumers start a new group at the earliest offset, so its group is first committed at the "
        "topic's current end (what earlier runs on the same stack left there is not read) and then reads exactly "
        "these events; the clock runs until the group's committed offsets reach the end, and the directory is "
        "counted afterwards. The baseline consumer is positioned the same way and runs before intake, not beside "
        "it. Rates are from the first committed batch on (the group's start-up is in the table).\n\n"
        "**How to read it.** *Burst*: every contact is CPU work in three processes on a 2-CPU machine: intake "
        f"(one Python process, so at most one core) used {f['intake_ms']:.1f} ms of CPU per contact, FerretDB "
        f"{f['ferret_ms']:.1f} ms, Kafka {f['kafka_ms']:.1f} ms, the load generator {f['loadgen_ms']:.1f} ms, "
        f"while other work on the machine took {f['other_cores']:.2f} of its {os.cpu_count()} cores (the CPU table). "
        f"That is {f['burst_rate']:,.0f} contacts/s; intake alone on a whole core would stop at about "
        f"{1000 / max(0.01, f['intake_ms']):,.0f}/s, and the platform on both cores with nothing else running at "
        f"about {2000 / max(0.01, f['intake_ms'] + f['ferret_ms'] + f['kafka_ms']):,.0f}/s. The latency is "
        f"waiting behind the other requests (p50 {f['burst_p50']:,.0f} ms ≈ {CONCURRENCY} ÷ rate, Little's law). "
        f"A contact costs {f['burst_commands']:.1f} FerretDB commands (8.4 in the run of 2026-12-02 00:40 UTC, "
        "16 before that; the table by collection shows each). What moved it: the inserts of concurrent requests "
        "(contact, outbox marker, provisional customer and its keys, recent contacts) travel to the store together, "
        "one `insert_many(ordered=False)` per collection for the requests in flight (`crm_runtime.coalesce`; a "
        "request is answered only once its own documents are stored, a duplicate reaches only its own request), "
        f"{f['docs_per_insert']:.1f} documents per command here; and the outbox relay publishes what this process "
        "has just inserted from an in-process handoff instead of reading each contact back (the marker path "
        "stays for a crash). The load generator is a lean keep-alive client (`bench.rawhttp`) instead of httpx, "
        "which spent about 2.5 ms of CPU per request in the run of 2026-12-02 00:40 UTC, on the machine the "
        "platform runs on. "
        f"Where the time goes: of the {f['burst_commands']:.1f} commands, {f['burst_finds']:.1f} are reads by "
        "`_id` (the caller's lookup keys, phone and name + unit, read side by side; a known caller's customer "
        "and recent contacts): a read cannot be grouped on FerretDB, where only `{_id: x}` uses an index "
        f"(`$in` reads the whole collection), and one costs {f['find_ferret_ms']:.2f} ms of FerretDB's CPU and "
        f"{f['find_client_ms']:.2f} ms of the client's, against {f['insert_one_ferret_ms']:.2f} + "
        f"{f['insert_one_client_ms']:.2f} ms for a single-document insert and {f['insert_5_ferret_ms']:.2f} + "
        f"{f['insert_5_client_ms']:.2f} ms per document of a grouped insert of 5 (the table above, same run). "
        "py-spy on intake (not a project dependency) puts about half of its busy time inside PyMongo, half of "
        "that in the socket send of each command, and most of the rest in the HTTP stack every service shares "
        "(uvicorn, FastAPI, the OpenTelemetry and Prometheus middleware, the token check), little in intake's own "
        "code. The relay's round trips wait in the same FerretDB queue as the requests': while they run it "
        f"publishes {f['relay_during']:,.1f} events/s, once they stop {f['relay_after']:,.0f}/s, so the last event "
        f"reaches the topic {lag:,.1f} s after the last answer. The burst's goal (p99 ≤ 250 ms and every event on "
        f"the topic within 60 s) asks for about {CONCURRENCY / 0.2:,.0f} contacts/s at {CONCURRENCY} concurrent "
        f"requests (Little's law); here p99 was {f['burst_p99']:,.0f} ms and the last event on the topic "
        f"{f['burst_topic_s']:,.1f} s after the first request"
        + (" (goal met)." if f["burst_p99"] <= 250 and f["burst_topic_s"] <= 60 else
           ": the goal is not met on this machine. What stops it is CPU: the reads above are the largest share "
           "of the store's work, and intake's own share is mostly the shared HTTP stack and PyMongo; what would "
           "remove more is fewer reads per contact (a known caller's customer and recent contacts kept in one "
           "document), a leaner request path in the shared service runtime"
           + (", and a machine not shared with other work." if f["other_cores"] > 0.2 else ".")) + " "
        f"CPU per contact compares within one run only: this run's raw Kafka baseline sent {f['raw_rate']:,.0f} "
        "events/s against 18,027/s in the run of 2026-12-02 00:40 UTC on the same kind of machine, "
        "which ran that much faster then. "
        "*Onboarding*: a batch of 500 "
        f"customers costs about {f['batch_commands']:,.0f} FerretDB commands: one `insert_many` of the "
        "customers, two of their lookup keys (the keys neighbours share apart from the rest: FerretDB writes a "
        "hundred documents in one SQLite transaction, but one transaction per document as soon as one of the "
        f"hundred exists already), the keys that existed updated {UPDATE_CHUNK} statements to a command, and "
        f"{f['batch_finds']:,.0f} `find_one` for provisional customers to merge under them. Of the "
        f"{f['keys_total']:,.0f} lookup keys of these customers, {f['keys_shared']:,.0f} already existed when their "
        f"batch came ({f['keys_shared_first']:.0%} of a batch's keys in the first half of the archive, "
        f"{f['keys_shared_second']:.0%} in the second; counted from the events), "
        f"{f['keys_shared_surname']:.0%} of them `surname-unit:` keys (project + unit number + surname: the key "
        "leaves out the building, so every `1201` of a project shares it, and common surnames repeat). Each of "
        "those costs a single-document insert that fails and an update statement, each its own SQLite "
        "transaction, and their share grows with the directory, as do the tables every insert goes through. "
        "Hence "
        f"{f['onboard_rate']:,.0f} customers/s, falling as the tables grow ({f['first_half']:,.0f}/s over the first "
        f"half, {f['second_half']:,.0f}/s over the second), against tens of thousands of events/s for a plain "
        "consumer and "
        f"{f['onboard_store_rate']:,.0f}/s for the store's own bulk insert of the same documents (the limit that "
        "applies: every customer brings about four lookup keys, and a database's writes run one at a time). "
        f"What moved it: bulk updates of {UPDATE_CHUNK} statements instead of 10 (25 update commands per batch of 500 in "
        "the run of 2026-11-30). What was tried and measured against FerretDB, and not kept: reading the "
        "often-shared keys first by `_id` (so only new ones are inserted) is 4-6x slower than inserting blind, "
        "the reads costing more than the one-by-one inserts they avoid; knowing which keys exist without "
        "reading (a filter of the keys this process wrote) would make the key step about 1.5x faster, the "
        "next step if onboarding must go faster. Everything here shares two CPUs with Kafka and with other work on the machine (the CPU tables' "
        "\"other work\" row), so the absolute rates are those of a small, busy machine."
    )
