"""`runtime` part (b): the effectively-once consumer on the batch path, next to its two
physical limits measured in the same run — raw aiokafka consume of the same messages and
the store's raw bulk insert of one document per event — with a profile of where the time
goes (store commands by collection and kind, time in the handler vs outside it, CPU per
process)."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter, defaultdict
from typing import Any

from crm_devstack.topics import ensure_topics
from crm_runtime.batching import UPDATE_CHUNK
from crm_runtime.consuming import subscribe_service
from crm_runtime.idempotency import APPLIED, apply_once, apply_once_many
from crm_runtime.kafka import (
    BatchSubscription,
    DeadLetters,
    DeliveryPolicy,
    Subscription,
    create_broker,
    encode_event,
)
from crm_runtime.testing import make_event
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient, UpdateOne, monitoring

from bench.common import Stopwatch, chinese_name, mobile, num, per_s, ratio_text, raw_consume, raw_produce, table
from bench.profile import find_pid as _find_pid
from bench.profile import proc_cpu_s as _proc_cpu_s

CALL = "crm.partner.hotline.call-recorded.v1"
SUMMARIES = ["业主来电反映卫生间天花板漏水，要求尽快维修", "投诉地下车库照明长期不亮", "咨询交房时间和办理流程",
             "建议小区增加新能源车充电桩", "反映楼上装修噪音扰民", "外墙瓷砖脱落存在安全隐患"]
PER_EVENT_SAMPLE = 2_000  # the per-event paths run ~100/s: a sample shows them without a 4-minute wait
BATCH = 500


class Commands(monitoring.CommandListener):
    """Store commands sent by this process, by (command, collection), with the time each took."""

    def __init__(self) -> None:
        self.count: Counter[tuple[str, str]] = Counter()
        self.micros: Counter[tuple[str, str]] = Counter()
        self.statements: Counter[tuple[str, str]] = Counter()  # documents inserted, updates sent
        self._open: dict[int, tuple[str, str]] = {}
        self.on = False

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.on:
            target = event.command.get(event.command_name)
            key = (event.command_name, target if isinstance(target, str) else "-")
            self.count[key] += 1
            self.statements[key] += len(event.command.get("updates") or event.command.get("documents") or [1])
            self._open[event.request_id] = key

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        key = self._open.pop(event.request_id, None)
        if key is not None:
            self.micros[key] += event.duration_micros

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        key = self._open.pop(event.request_id, None)
        if key is not None:
            self.micros[key] += event.duration_micros


class Cpu:
    """CPU seconds of this process, FerretDB and Kafka over a phase."""

    def __init__(self, stack: Any):
        port = stack.mongodb_url.rsplit(":", 1)[1].strip("/")
        kafka = getattr(stack, "_kafka_proc", None)
        self.pids = {"FerretDB": _find_pid(lambda c, e: f"--listen-addr=127.0.0.1:{port}\0".encode() in c),
                     "Kafka": kafka.pid if kafka is not None else None}
        self.start = self._sample()

    def _sample(self) -> dict[str, float]:
        times = os.times()
        out = {"consumer (this process)": times.user + times.system}
        out.update({name: _proc_cpu_s(pid) or 0.0 for name, pid in self.pids.items() if pid})
        return out

    def used(self) -> dict[str, float]:
        end = self._sample()
        return {name: end[name] - self.start.get(name, 0.0) for name in end}


async def effectively_once(stack: Any, db: Any, run_id: str, n: int) -> tuple[dict[str, float], list[str]]:
    topic = f"bench.consume.{run_id}"
    await ensure_topics(stack.bootstrap, [topic], partitions=6)
    rng = random.Random(2)
    aggregates = max(1, n // 10)
    events, messages = [], []
    for i in range(n):
        subject = f"agg-{i % aggregates:06d}"
        event = make_event(CALL, {"call_id": f"call-{run_id}-{i}", "caller_phone": mobile(rng),
                                  "started_at": "2026-03-01T09:30:00+08:00", "duration_s": rng.randint(20, 900),
                                  "summary": f"{chinese_name(rng)}：{rng.choice(SUMMARIES)}"}, subject=subject)
        events.append(event)
        messages.append((subject.encode(), encode_event(event)))
    await raw_produce(stack.bootstrap, topic, messages)  # untimed: the input

    # Limit 1: raw consume of the same messages.
    raw = await raw_consume(stack.bootstrap, topic, n, f"bench-raw-{run_id}")
    # Limit 2: the store's raw bulk insert of one small document per event (its id, its aggregate).
    raw_docs = [{"_id": e.id, "aggregate": e.subject, "n": 1} for e in events]
    clock = Stopwatch()
    for i in range(0, n, 1000):
        await db["raw_effects"].insert_many(raw_docs[i:i + 1000], ordered=False)
    raw_store_s = clock.s
    # Not a limit of the goal but the floor of any exact consumer of aggregates on this store:
    # one update by `_id` per aggregate document (bulk_write, UPDATE_CHUNK per command: FerretDB hangs at 100).
    agg_ids = [f"agg-{i:06d}" for i in range(aggregates)]
    for i in range(0, aggregates, 1000):
        await db["raw_aggregates"].insert_many([{"_id": a, "n": 0} for a in agg_ids[i:i + 1000]])
    clock = Stopwatch()
    for i in range(0, aggregates, UPDATE_CHUNK):
        await db["raw_aggregates"].bulk_write([UpdateOne({"_id": a}, {"$inc": {"n": 1}})
                                               for a in agg_ids[i:i + UPDATE_CHUNK]], ordered=False)
    raw_update_s = clock.s

    # The platform, batch path: one service consumer, apply_once_many per delivered batch.
    listener = Commands()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.mongodb_url, event_listeners=[listener],
                                                                tz_aware=True)
    effects = client[db.name]["effects"]
    await effects.find_one({"_id": "warm-up"})
    done = asyncio.Event()
    count, first_at, in_handler, batches = 0, None, 0.0, 0

    async def on_calls(batch: list[Any]) -> None:
        nonlocal count, first_at, in_handler, batches
        started = time.perf_counter()
        first_at = first_at or started
        await apply_once_many(effects, [(e.subject, e.id, {"$inc": {"n": 1}}) for e, _ in batch])
        in_handler += time.perf_counter() - started
        batches += 1
        count += len(batch)
        if count >= n:
            done.set()

    broker = create_broker(stack.bootstrap, service="bench", registry=CollectorRegistry())
    subscribe_service(broker, [], [BatchSubscription(topic, (CALL,), on_calls, max_records=BATCH)],
                      group_id=f"bench-eo-{run_id}", dead_letters=DeadLetters(broker, "bench"),
                      policy=DeliveryPolicy(), max_records=BATCH)
    listener.on = True
    cpu = Cpu(stack)
    started_all = Stopwatch()
    await broker.start()
    try:
        await asyncio.wait_for(done.wait(), timeout=max(600, n / 20))
        platform_s = time.perf_counter() - (first_at or time.perf_counter())
        total_s = started_all.s
    finally:
        await broker.stop()
    listener.on = False
    cpu_used = cpu.used()
    docs = [d async for d in effects.find({})]
    recorded = [event_id for d in docs for event_id in d[APPLIED]]
    total = sum(d["n"] for d in docs)
    assert total == n and len(recorded) == len(set(recorded)) == n, (total, len(recorded), len(set(recorded)))

    # Before: one event at a time (a per-event handler, `workers=1`, `apply_once`), and
    # per-event handlers with keys side by side (`workers=16`), both in the service consumer, on a sample.
    sample = min(n, PER_EVENT_SAMPLE)
    single_s = await per_event(stack, client[db.name]["effects_single"], topic, f"bench-single-{run_id}", sample,
                               workers=1)
    keyed_s = await per_event(stack, client[db.name]["effects_keyed"], topic, f"bench-keyed-{run_id}", sample,
                              workers=16)
    await client.close()

    limit = min(raw.rate, per_s(n, raw_store_s))
    rates = {"raw": raw.rate, "raw_store": per_s(n, raw_store_s), "limit": limit, "platform": per_s(n, platform_s),
             "single": per_s(sample, single_s), "keyed": per_s(sample, keyed_s),
             "raw_update": per_s(aggregates, raw_update_s)}
    rows = table(["path", "events", "seconds", "events/s", "÷ slower limit"], [
        ("limit: raw AIOKafkaConsumer (group, commit per getmany batch)", f"{n:,}", f"{raw.from_first_s:.2f}",
         num(rates["raw"]), ratio_text(rates["raw"] / limit)),
        ("limit: raw FerretDB insert_many of one document per event (1,000 per command)", f"{n:,}",
         f"{raw_store_s:.2f}", num(rates["raw_store"]), ratio_text(rates["raw_store"] / limit)),
        (f"(floor, not a limit: raw FerretDB bulk update by `_id`, {UPDATE_CHUNK} per command, documents/s)",
         f"{aggregates:,}", f"{raw_update_s:.2f}", num(rates["raw_update"]), ratio_text(rates["raw_update"] / limit)),
        (f"**batch path**: service consumer (one for all topics) + `apply_once_many`, batches of ≤ {BATCH}",
         f"{n:,}", f"{platform_s:.1f}", f"**{num(rates['platform'])}**", ratio_text(rates["platform"] / limit)),
        ("before: one event at a time (service consumer, per-event handler, `workers=1`, `apply_once`)",
         f"{sample:,}", f"{single_s:.1f}",
         num(rates["single"]), ratio_text(rates["single"] / limit)),
        ("per-event handler in the service consumer, 16 keys side by side, `apply_once`", f"{sample:,}",
         f"{keyed_s:.1f}", num(rates["keyed"]), ratio_text(rates["keyed"] / limit)),
    ]) + ["", f"Timed from the first delivered message to the last effect stored; joining the group is not "
          f"included ({raw.from_start_s - raw.from_first_s:.1f} s for the raw consumer, {total_s - platform_s:.1f} s "
          f"for the platform). {len(docs):,} aggregate documents hold the {n:,} effects: sum of the counters "
          f"= {total:,}, {len(recorded):,} event ids recorded, none twice. {batches:,} batches, "
          f"{n / max(batches, 1):,.0f} events each on average.",
          "", "**Profile of the batch path** (store commands sent by the consumer, by kind and collection; "
          "the time is the sum of each command's latency, so concurrent commands add up beyond the wall time)", "",
          *profile_rows(listener, n), "",
          *table(["where the wall time goes", "seconds", "share"], [
              ("inside the batch handler (`apply_once_many`: store round trips)", f"{in_handler:.1f}",
               f"{in_handler / platform_s:.0%}"),
              ("outside it (Kafka fetch, contract parse, dispatch, commit)", f"{platform_s - in_handler:.1f}",
               f"{(platform_s - in_handler) / platform_s:.0%}"),
          ]), "",
          *table(["process", "CPU seconds", "cores busy"],
                 [(name, f"{s:.1f}", f"{s / total_s:.2f}") for name, s in cpu_used.items()]),
          "", f"Over {total_s:.1f} s of wall time on {os.cpu_count()} CPUs shared with other work.",
          "", *explanation(listener, rates, n)]
    return rates, rows


def explanation(listener: Commands, rates: dict[str, float], n: int) -> list[str]:
    upd, find = ("update", "effects"), ("find", "effects")
    per_update_ms = listener.micros[upd] / max(listener.statements[upd], 1) / 1000
    find_ms = listener.micros[find] / max(listener.count[find], 1) / 1000
    commands = sum(listener.count.values()) / n
    return [
        f"**What moved it** (issue 14). Before, one event at a time (a per-event handler with `workers=1` and "
        f"`apply_once`: read, claim, re-read, update — 4 round trips per event, one after another) runs at "
        f"{num(rates['single'])}/s in the service consumer (the retired per-topic `subscribe()` ran 74.6/s, "
        f"as measured 2026-12-02 00:28 UTC). Now the "
        f"service consumer hands everything one `getmany` returns (≤ {BATCH}) to `apply_once_many`: per aggregate "
        f"one read (none when this process wrote it last — a stale memory is caught by the revision claim), the "
        f"aggregate's events folded into one update, all claims in one insert, the updates in `bulk_write`s of "
        f"{UPDATE_CHUNK}: "
        f"{commands:.2f} store commands per event ({listener.statements[upd] / n:.2f} documents rewritten per "
        f"event), {num(rates['platform'])}/s. Per-event handlers gain from the one service consumer too: with "
        f"`workers=16` its keys run side by side ({num(rates['keyed'])}/s on the same `apply_once`).",
        "",
        f"**What stops it** (goal ≥ 50 % of the slower limit, {num(rates['limit'])}/s: not met, "
        f"{rates['platform'] / rates['limit']:.0%}). The store's per-document update: the batch path rewrote "
        f"{rates['platform'] * listener.statements[upd] / n:,.0f} documents/s, "
        f"{rates['platform'] * listener.statements[upd] / n / rates['raw_update']:.0%} of the raw update floor. "
        f"FerretDB 1.24 applies each "
        f"update statement by reading, modifying and rewriting its SQLite row — {per_update_ms:.2f} ms per document "
        f"inside a bulk_write here, {num(rates['raw_update'])} documents/s in the raw floor row, against "
        f"{num(rates['raw_store'])}/s for a bulk insert — and a read by `_id` took {find_ms:.1f} ms at 16 in flight. "
        f"Neither can be widened: `$in` reads the whole collection and an update command of 100 statements hangs. "
        f"An exact consumer of aggregates must read and rewrite each aggregate a batch touches, so its ceiling on "
        f"this store is the update floor × the events per touched aggregate (here "
        f"{n / max(listener.statements[upd], 1):.1f}). What would remove it: MongoDB (updates applied in the "
        f"server's storage engine, `$in` on the index). Effects stored as inserts instead (an effect log keyed "
        f"by event id, folded into the aggregates by a background folder) were built and measured on "
        f"2026-12-02 16:40 UTC and not kept: the log took 4,768 events/s, 0.22 of that run's insert limit "
        f"(21,238/s; the folder's updates share the store's one writer and the two CPUs), and the aggregates were "
        f"exact only after the fold, 1,492 events/s end to end against 1,861/s for this batch path in the same "
        f"run: no faster for anyone who reads the aggregates, and their state would lag.",
    ]


def profile_rows(listener: Commands, n: int) -> list[str]:
    by_kind: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (command, coll), count in listener.count.items():
        by_kind[f"{command} {coll}"][0] += count
        by_kind[f"{command} {coll}"][1] += listener.micros[(command, coll)]
    ordered = sorted(by_kind.items(), key=lambda kv: -kv[1][1])
    rows = [(kind, f"{c:,}", f"{c / n:.2f}", f"{us / 1e6:.1f} s", f"{us / c / 1000:.2f} ms")
            for kind, (c, us) in ordered]
    allc, allus = sum(c for c, _ in by_kind.values()), sum(us for _, us in by_kind.values())
    rows.append(("all", f"{allc:,}", f"{allc / n:.2f}", f"{allus / 1e6:.1f} s", ""))
    return table(["command collection", "count", "per event", "summed latency", "mean"], rows)


async def per_event(stack: Any, collection: Any, topic: str, group: str, sample: int, *, workers: int) -> float:
    """Seconds for the first `sample` effects through a per-event handler and `apply_once`."""
    done = asyncio.Event()
    count, first_at = 0, None

    async def on_call(event: Any, data: Any) -> None:
        nonlocal count, first_at
        first_at = first_at or time.perf_counter()
        await apply_once(collection, event.subject, event.id, {"$inc": {"n": 1}})
        count += 1
        if count >= sample:
            done.set()

    broker = create_broker(stack.bootstrap, service="bench", registry=CollectorRegistry())
    sub = Subscription(topic, workers=workers).on(CALL, on_call)
    subscribe_service(broker, [sub], group_id=group, dead_letters=DeadLetters(broker, "bench"), policy=DeliveryPolicy())
    await broker.start()
    try:
        await asyncio.wait_for(done.wait(), timeout=max(600, sample / 5))
        return time.perf_counter() - (first_at or time.perf_counter())
    finally:
        await broker.stop()
