"""`runtime`: the two reliability primitives every service runs on, next to raw aiokafka.

(a) The outbox relay: N aggregate documents, each with one pending event written by
    `new_document_with_outbox`, drained by `OutboxRelay.relay_once` to a topic, against a
    plain idempotent acks=all AIOKafkaProducer sending the same N encoded events.
(b) The effectively-once consumer (`bench.runtime_consumer`): N events on a 6-partition
    topic consumed in batches by the service consumer applying one increment per event
    through `apply_once_many`, against raw aiokafka consume and the store's raw bulk insert.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

from aiokafka import AIOKafkaProducer
from crm_contracts.envelope import CloudEvent
from crm_contracts.examples import example_event
from crm_devstack.topics import ensure_topics
from crm_runtime.batching import READ_CONCURRENCY, UPDATE_CHUNK
from crm_runtime.kafka import create_broker, encode_event
from crm_runtime.leases import Lease
from crm_runtime.mongo import create_client, is_ferretdb
from crm_runtime.outbox import MARKERS, OutboxRelay, OutgoingEvent, marker, new_document_with_outbox
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient, UpdateOne

from bench.common import (
    Headline,
    Section,
    Stopwatch,
    num,
    per_s,
    ratio_text,
    raw_produce,
    table,
    topic_total,
)
from bench.profile import CommandCounter, CpuMeter, command_table
from bench.runtime_consumer import effectively_once

CALL = "crm.partner.hotline.call-recorded.v1"
SUMMARIES = ["业主来电反映卫生间天花板漏水，要求尽快维修", "投诉地下车库照明长期不亮", "咨询交房时间和办理流程",
             "建议小区增加新能源车充电桩", "反映楼上装修噪音扰民", "表扬物业保安及时帮助老人", "投诉电梯频繁故障",
             "外墙瓷砖脱落存在安全隐患", "询问物业费收费标准", "窗户密封不严下雨渗水"]


async def run(stack: Any, quick: bool) -> Section:
    n = 2_000 if quick else 20_000
    clock = Stopwatch()
    run_id = uuid.uuid4().hex[:8]
    section = Section("runtime", "Runtime: outbox relay and effectively-once consumer",
                      sizes=f"N = {n:,} events each")
    client = create_client(stack.mongodb_url, app_name="bench-runtime")
    db = client[f"bench_runtime_{run_id}"]
    try:
        probe = await round_trips(stack, db, run_id)
        relay_rate, raw_produce_rate, store_rate, relay_rows = await outbox_relay(stack, db, run_id, n)
        consumer_rates, consumer_rows = await effectively_once(stack, db, run_id, n)
    finally:
        await client.drop_database(db.name)
        await client.close()

    section.headlines = [
        Headline("runtime: outbox relay", "OutboxRelay.relay_once until 0 (FerretDB → Kafka, batches)", relay_rate,
                 f"slower of AIOKafkaProducer acks=all pipelined ({num(raw_produce_rate)}/s) and the store's "
                 f"bulk read+update ({num(store_rate)}/s)", min(raw_produce_rate, store_rate)),
        Headline("runtime: effectively-once consumer",
                 "service consumer, batches + apply_once_many (event ids recorded in the same write)",
                 consumer_rates["platform"],
                 f"slower of raw AIOKafkaConsumer ({num(consumer_rates['raw'])}/s) and raw FerretDB insert_many "
                 f"({num(consumer_rates['raw_store'])}/s)", consumer_rates["limit"]),
    ]
    section.details = [
        "**(a) Outbox relay**", "", *relay_rows, "",
        "**(b) Effectively-once consumer**", "", *consumer_rows, "",
        "**Round trips on this stack** (sequential, one at a time: what each step of the two paths waits for)", "",
        *table(["operation", "count", "mean latency", "per second"],
               [(name, f"{count:,}", f"{seconds / count * 1000:.2f} ms", num(per_s(count, seconds)))
                for name, count, seconds in probe]),
    ]
    section.about = (
        "**What `runtime` measures.** (a) *Outbox relay*: N aggregate documents, each carrying one pending "
        "ContactReceived-sized event (`new_document_with_outbox`, plus the marker `Outbox` drops for the relay), "
        "are inserted into a fresh FerretDB collection untimed; then `OutboxRelay.relay_once()` is called in a loop "
        "until it returns 0, and the time to drain all N to a 6-partition topic gives events/s. A batch: read the "
        "markers, unmark them in bulk, read the documents (concurrent `find_one` by `_id` on FerretDB, where "
        "`$in` reads the whole collection; one `$in` on MongoDB), publish every event and then await every ack, "
        "claim the next revision of each document in one insert and clear their outboxes in bulk updates. Two "
        "limits are measured in the same run: a plain `AIOKafkaProducer(acks='all', enable_idempotence=True)` "
        "sending the same N encoded events, all in flight at once, and the store's raw bulk read+update (the "
        "same documents read by `_id` and updated in bulk, in the fastest form the store takes, without markers "
        "or claims); the headline ratio is the relay over the slower of the two. What the batches moved: one "
        "document at a time (five FerretDB round trips and one acks=all produce each, 32 documents at once) the "
        "relay drained 264 events/s, 1/93 of raw produce (run of 2026-11-30); in batches its commands per event "
        "fall from five to about one (the table below), and Kafka is no longer what it waits for. "
        "(b) *Effectively-once consumer*: N events on a 6-partition topic, keyed by N/10 "
        "aggregates (10 events each, like a case), consumed by the service consumer (`subscribe_service`: one "
        "FastStream batch subscriber for all of a service's topics, contract validation, retries/DLQ, commit "
        "after the batch) with a batch handler applying one increment per event through `apply_once_many`; timed "
        "from the first delivered event until the N-th effect is stored, then checked (sum of the counters = N, "
        "no event id recorded twice). Its limits, measured in the same run: a plain `AIOKafkaConsumer` in a group "
        "reading the same N and committing after every `getmany`, and FerretDB's raw `insert_many` of one small "
        "document per event; the headline's ratio is to the slower of the two. The per-event paths (a "
        "per-event handler with `apply_once` in the same service consumer, one event at a time with `workers=1` "
        "and 16 keys side by side with `workers=16`) run on a 2,000-event sample. **How to read it**: the ratio is platform ÷ the slower limit; the relay is bound by "
        f"FerretDB (about one `find_one` per event plus a bulk command per {UPDATE_CHUNK} events; its Kafka "
        "share is in its step table); the consumer's profile is printed with it. Raw Kafka batches thousands of "
        "messages per round trip; the platform's correctness (nothing lost, nothing applied twice) costs round "
        "trips."
    )
    section.seconds = clock.s
    return section


async def round_trips(stack: Any, db: Any, run_id: str, count: int = 1000) -> list[tuple[str, int, float]]:
    """Single-operation latencies that explain the rates: FerretDB by `_id`, and Kafka acks=all."""
    coll = db["probe"]
    out: list[tuple[str, int, float]] = []
    clock = Stopwatch()
    for i in range(count):
        await coll.insert_one({"_id": f"p{i}", "v": i, "text": "卫生间漏水" * 10})
    out.append(("FerretDB insert_one", count, clock.s))
    clock = Stopwatch()
    for i in range(count):
        await coll.find_one({"_id": f"p{i}"})
    out.append(("FerretDB find_one by _id", count, clock.s))
    clock = Stopwatch()
    for i in range(count):
        await coll.update_one({"_id": f"p{i}"}, {"$inc": {"v": 1}})
    out.append(("FerretDB update_one by _id", count, clock.s))
    topic = f"bench.probe.{run_id}"
    await ensure_topics(stack.bootstrap, [topic], partitions=6)
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"warm-up", key=b"k")
        clock = Stopwatch()
        for i in range(count):
            await producer.send_and_wait(topic, b"x" * 1000, key=str(i).encode())
        out.append(("Kafka send_and_wait, acks=all (1 KB)", count, clock.s))
    finally:
        await producer.stop()
    return out


def contact_event(i: int, rng: random.Random) -> CloudEvent:
    event = example_event("crm.intake.contact.received.v1")
    data = dict(event.data)
    contact_id = f"ct-{i:08d}"
    data.update(contact_id=contact_id, source_ref=contact_id, body=rng.choice(SUMMARIES))
    return event.model_copy(update={"id": str(uuid.uuid4()), "subject": contact_id, "data": data})


class ProfiledRelay(OutboxRelay):
    """The relay as it runs, with the wall time of each step of a batch added up."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.steps: dict[str, float] = {"read the marked documents": 0.0, "publish (send all, await all acks)": 0.0,
                                        "clear (claims, bulk updates)": 0.0}

    async def _timed(self, step: str, coro: Any) -> Any:
        clock = Stopwatch()
        try:
            return await coro
        finally:
            self.steps[step] += clock.s

    async def _read(self, collection: Any, ids: list[Any], ferret: bool) -> dict[Any, dict[str, Any]]:
        return await self._timed("read the marked documents", super()._read(collection, ids, ferret))

    async def _publish(self, entries: list[dict[str, Any]]) -> int:
        return await self._timed("publish (send all, await all acks)", super()._publish(entries))

    async def _clear(self, collection: Any, docs: list[dict[str, Any]], ferret: bool) -> list[dict[str, Any]]:
        return await self._timed("clear (claims, bulk updates)", super()._clear(collection, docs, ferret))


async def raw_store(db: Any, docs: list[dict[str, Any]]) -> float:
    """The store's own limit for what the relay does to a document: read it by `_id` and
    update it, in the fastest form the store allows, nothing else (no markers, no claims).
    FerretDB: concurrent `find_one` by `_id`, updates in bulk commands one at a time (the
    relay's bounds); MongoDB: one `$in`, one `bulk_write`. Returns the seconds."""
    coll = db["raw_store"]
    for i in range(0, len(docs), 1000):
        await coll.insert_many(docs[i:i + 1000], ordered=False)
    ferret = await is_ferretdb(db.client)
    slots = asyncio.Semaphore(READ_CONCURRENCY)

    async def one(doc_id: Any) -> Any:
        async with slots:
            return await coll.find_one({"_id": doc_id}, {"outbox": 1, "rev": 1})

    clock = Stopwatch()
    for start in range(0, len(docs), 500):
        ids = [d["_id"] for d in docs[start:start + 500]]
        if ferret:
            read = await asyncio.gather(*(one(i) for i in ids))
        else:
            read = [d async for d in coll.find({"_id": {"$in": ids}}, {"outbox": 1, "rev": 1})]
        ops = [UpdateOne({"_id": d["_id"]}, {"$set": {"outbox": [], "outbox_pending": False, "rev": 1}})
               for d in read]
        step = UPDATE_CHUNK if ferret else len(ops)
        for j in range(0, len(ops), step):
            await coll.bulk_write(ops[j:j + step], ordered=False)
    return clock.s


async def outbox_relay(stack: Any, db: Any, run_id: str, n: int) -> tuple[float, float, float, list[str]]:
    rng = random.Random(1)
    relay_topic, raw_topic = f"bench.outbox.{run_id}", f"bench.raw-produce.{run_id}"
    await ensure_topics(stack.bootstrap, [relay_topic, raw_topic], partitions=6)
    events = [contact_event(i, rng) for i in range(n)]
    size = sum(len(encode_event(e)) for e in events) / n

    # Raw baseline: the same encoded events, keyed the same.
    raw_s = await raw_produce(stack.bootstrap, raw_topic, [(e.subject.encode(), encode_event(e)) for e in events])

    # The documents, written untimed in bulk, as `Outbox.insert` leaves them: each with its
    # pending event, and a marker the relay reads instead of scanning the collection.
    aggregates = db["aggregates"]
    setup = Stopwatch()
    docs = [new_document_with_outbox({"_id": e.subject, "status": "received", "region": "shenzhen"},
                                     [OutgoingEvent(relay_topic, e)]) for e in events]
    for i in range(0, n, 1000):
        await aggregates.insert_many(docs[i:i + 1000], ordered=False)
        await db[MARKERS].insert_many([marker(aggregates.name, d["_id"]) for d in docs[i:i + 1000]], ordered=False)
    setup_s = setup.s

    # The store's limit, on a copy of the same documents in the same database.
    store_s = await raw_store(db, [dict(d) for d in docs])

    # The relay on its own client, so its commands are counted by collection.
    counter = CommandCounter()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.mongodb_url, tz_aware=True,
                                                                event_listeners=[counter])
    relay_db = client[db.name]
    broker = create_broker(stack.bootstrap, service="bench", registry=CollectorRegistry())
    await broker.connect()
    try:
        relay = ProfiledRelay(broker, [relay_db["aggregates"]], Lease(relay_db["leases"], "outbox-relay", "bench"))
        await is_ferretdb(client)  # asked once per client, not part of a batch
        before = counter.snapshot()
        meter = CpuMeter(stack, this_process="relay (this process)")
        clock = Stopwatch()
        published, rounds = 0, 0
        while True:
            got = await relay.relay_once()
            if not got:
                break
            published += got
            rounds += 1
        relay_s = clock.s
        cpu_rows = meter.rows()
        after = counter.snapshot()
    finally:
        await broker.stop()
        await client.close()
    on_topic = await topic_total(stack.bootstrap, relay_topic)
    pending = await aggregates.count_documents({"outbox_pending": True})
    assert published == n and on_topic >= n and pending == 0, (published, on_topic, pending)

    relay_rate, raw_rate, store_rate = per_s(n, relay_s), per_s(n - 1, raw_s), per_s(n, store_s)
    limit = min(raw_rate, store_rate)
    steps = dict(relay.steps)
    steps["markers: read a batch, unmark it"] = max(0.0, relay_s - sum(steps.values()))
    rows = table(["path", "events", "seconds", "events/s"], [
        (f"raw AIOKafkaProducer (acks=all, idempotent, all in flight), {size:,.0f}-byte events", f"{n:,}",
         f"{raw_s:.2f}", num(raw_rate)),
        (f"raw store: read each document by `_id` ({READ_CONCURRENCY} concurrent) and update it in bulk "
         f"({UPDATE_CHUNK} statements a command), nothing else", f"{n:,}", f"{store_s:.2f}", num(store_rate)),
        (f"OutboxRelay.relay_once() in a loop until 0 (batches of {relay.batch_size} markers, {rounds:,} batches)",
         f"{n:,}", f"{relay_s:.1f}", num(relay_rate)),
    ]) + ["", f"Ratio relay ÷ the slower limit ({'the store' if store_rate < raw_rate else 'Kafka'}, "
          f"{num(limit)}/s): **{ratio_text(relay_rate / limit)}**; relay ÷ raw produce: "
          f"{ratio_text(relay_rate / raw_rate)}. All {n:,} on the topic ({on_topic:,} messages), none left pending. "
          f"Untimed set-up: {n:,} documents and markers inserted in bulk in {setup_s:.1f} s "
          f"({num(per_s(n, setup_s))} documents/s).",
          "", "Where the relay's time goes (wall time of its steps, summed over the batches):", "",
          *table(["step", "seconds", "share"], [(k, f"{v:.2f}", f"{v / relay_s:.0%}") for k, v in steps.items()]),
          "", "The relay's store commands:", "",
          *command_table(before, after, n, "event"),
          "", "CPU while the relay drains:", "", *cpu_rows]
    return relay_rate, raw_rate, store_rate, rows
