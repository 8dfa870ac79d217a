"""`intake` part 2: a customer archive absorbed into intake's directory, next to raw consume and insert."""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from crm_contracts import topics
from crm_contracts.events.partner import CustomerUpserted
from crm_contracts.regions import KNOWN_REGIONS
from crm_contracts.registry import parse_event
from crm_runtime.mongo import create_client
from intake.adapters.store import MongoDirectory
from intake.domain.customers import DirectoryEntry
from intake.handlers import directory_entry

from bench.common import (
    Stopwatch,
    chinese_name,
    committed_total,
    end_offsets,
    intake_process,
    mobile,
    num,
    per_s,
    ratio_text,
    raw_consume,
    raw_produce,
    table,
    unit_of,
)
from bench.intake_common import (
    CUSTOMER_UPSERTED,
    EMAIL_DOMAINS,
    EMAIL_NAMES,
    FULL_ONBOARDING,
    INTAKE_TOPICS,
    REGION_WEIGHTS,
    REGIONS,
    SECRET,
    command_rows,
    ferret_commands,
    intake_meter,
    log_summary,
    progress,
    start_group_at_end,
)
from bench.profile import command_table, hook_env, read_dump


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
