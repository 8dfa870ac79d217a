"""`runtime`: the two reliability primitives every service runs on, next to raw aiokafka.

(a) The outbox relay: N aggregate documents, each with one pending event written by
    `new_document_with_outbox`, drained by `OutboxRelay.relay_once` to a topic, against a
    plain idempotent acks=all AIOKafkaProducer sending the same N encoded events.
(b) The effectively-once consumer (`bench.runtime_consumer`): N events on a 6-partition
    topic consumed in batches by the service consumer applying one increment per event
    through `apply_once_many`, against raw aiokafka consume and the store's raw bulk insert.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from aiokafka import AIOKafkaProducer
from crm_contracts.envelope import CloudEvent
from crm_contracts.examples import example_event
from crm_devstack.topics import ensure_topics
from crm_runtime.kafka import create_broker, encode_event
from crm_runtime.leases import Lease
from crm_runtime.mongo import create_client
from crm_runtime.outbox import MARKERS, OutboxRelay, OutgoingEvent, new_document_with_outbox
from prometheus_client import CollectorRegistry

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
        relay_rate, raw_produce_rate, relay_rows = await outbox_relay(stack, db, run_id, n)
        consumer_rates, consumer_rows = await effectively_once(stack, db, run_id, n)
    finally:
        await client.drop_database(db.name)
        await client.close()

    section.headlines = [
        Headline("runtime: outbox relay", "OutboxRelay.relay_once until 0 (FerretDB → Kafka)", relay_rate,
                 "AIOKafkaProducer acks=all, idempotent, pipelined", raw_produce_rate),
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
        "until it returns 0, and the time to drain all N to a 6-partition topic gives events/s. The baseline is a "
        "plain `AIOKafkaProducer(acks='all', enable_idempotence=True)` sending the same N encoded events, all "
        "in flight at once. (b) *Effectively-once consumer*: N events on a 6-partition topic, keyed by N/10 "
        "aggregates (10 events each, like a case), consumed by `subscribe()` — FastStream, contract validation, "
        "retries/DLQ, commit after success — with a handler applying one increment through `apply_once` (read the "
        "document by `_id`, refuse an event id already in its `applied_events`, write through a revision claim); "
        "timed from the first delivered event until the N-th effect is "
        "stored, then checked (the sum of the counters is N). The baseline is a plain `AIOKafkaConsumer` in a "
        "consumer group reading the same N and committing after every `getmany` batch; a middle row runs the "
        "same contract parse and `apply_once` from a plain consumer, separating the cost of the store from the "
        "cost of the framework. **How to read it**: the ratio is platform ÷ raw; both paths are bound by "
        "round trips (the relay makes five FerretDB round trips and waits for one acks=all produce per "
        "document, up to 32 documents at a time; the consumer four round trips per event, one event at a time "
        "per subscription), so the round-trip table below predicts the consumer: rate ≈ 1 / (sum of its round "
        "trips). Raw Kafka batches thousands of messages per "
        "round trip; the platform's correctness (nothing lost, nothing applied twice) costs round trips."
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


async def outbox_relay(stack: Any, db: Any, run_id: str, n: int) -> tuple[float, float, list[str]]:
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
        await db[MARKERS].insert_many([{"_id": f"{aggregates.name}|{d['_id']}", "collection": aggregates.name,
                                        "doc_id": d["_id"]} for d in docs[i:i + 1000]], ordered=False)
    setup_s = setup.s

    broker = create_broker(stack.bootstrap, service="bench", registry=CollectorRegistry())
    await broker.connect()
    try:
        relay = OutboxRelay(broker, [aggregates], Lease(db["leases"], "outbox-relay", "bench"))
        clock = Stopwatch()
        published = 0
        while True:
            got = await relay.relay_once()
            if not got:
                break
            published += got
        relay_s = clock.s
    finally:
        await broker.stop()
    on_topic = await topic_total(stack.bootstrap, relay_topic)
    pending = await aggregates.count_documents({"outbox_pending": True})
    assert published == n and on_topic >= n and pending == 0, (published, on_topic, pending)

    relay_rate, raw_rate = per_s(n, relay_s), per_s(n - 1, raw_s)
    rows = table(["path", "events", "seconds", "events/s"], [
        (f"raw AIOKafkaProducer (acks=all, idempotent, all in flight), {size:,.0f}-byte events", f"{n:,}",
         f"{raw_s:.2f}", num(raw_rate)),
        ("OutboxRelay.relay_once() in a loop until 0 (batches of 200 markers)", f"{n:,}", f"{relay_s:.1f}",
         num(relay_rate)),
    ]) + ["", f"Ratio relay ÷ raw: **{ratio_text(relay_rate / raw_rate)}**. All {n:,} on the topic "
          f"({on_topic:,} messages), none left pending. Untimed set-up: {n:,} documents and markers "
          f"inserted in bulk in {setup_s:.1f} s ({num(per_s(n, setup_s))} documents/s)."]
    return relay_rate, raw_rate, rows
