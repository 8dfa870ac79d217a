"""Proofs against the real Kafka and MongoDB-protocol server that the service consumer
(`subscribe_service`, per-event handlers) keeps its promises: effectively-once effects
after a crash, dead letters with reasons after the retries, poison messages that never
stop a consumer, and re-drive. The batch handlers' side is in test_batch_delivery.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from crm_contracts.topics import dlq_topic
from crm_devstack.topics import ensure_topics
from crm_runtime.consuming import subscribe_service
from crm_runtime.idempotency import APPLIED
from crm_runtime.kafka import DeadLetters, DeliveryPolicy, Subscription, create_broker
from crm_runtime.mongo import create_client
from crm_runtime.redrive import redrive
from crm_runtime.testing import eventually, make_event, produce, wait_for_messages

pytestmark = pytest.mark.stack

CALL = "crm.partner.hotline.call-recorded.v1"
HERE = Path(__file__).parent


def call_event(n: int, **overrides):
    data = {"call_id": f"call-{n}", "caller_phone": "13800018000", "started_at": "2026-03-01T09:30:00+08:00",
            "duration_s": 60, "summary": f"call number {n}"}
    data.update(overrides)
    return make_event(CALL, data, subject=str(n))


@pytest.mark.parametrize(("mode", "total", "keys", "kill_after"), [
    ("single", 600, 10, 100),  # per-event handler, `apply_once`: the kill lands between two events
    ("batch", 3000, 30, 700),  # batch handler, `apply_once_many` in slices: the kill lands mid-batch
])
async def test_a_consumer_killed_mid_stream_applies_every_event_exactly_once(stack, mode, total, keys, kill_after):
    topic = f"test.kill.{uuid.uuid4().hex[:8]}"
    database = f"test_kill_{uuid.uuid4().hex[:8]}"
    group = f"crm-test-{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.bootstrap, [topic], partitions=3)
    events = [call_event(n) for n in range(total)]
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for e in events:
            await producer.send(topic, e.model_dump_json().encode(), key=e.subject.encode())
        await producer.flush()
    finally:
        await producer.stop()

    client = create_client(stack.mongodb_url, app_name="test")
    counters = client[database]["counters"]

    def start_consumer() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(HERE / "counting_consumer.py"), stack.bootstrap,
                                 stack.mongodb_url, database, topic, group, mode, str(keys)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ.copy())

    async def applied() -> int:
        return sum([d.get("n", 0) async for d in counters.find({})])  # apply_once may have created it only

    try:
        first = start_consumer()
        await eventually(lambda: applied_at_least(applied, kill_after), timeout=90)
        first.send_signal(signal.SIGKILL)  # no graceful shutdown, no final write, no commit
        first.wait()
        killed_at = await applied()
        assert killed_at < total, "the kill should land mid-stream"

        second = start_consumer()
        try:
            await eventually(lambda: applied_at_least(applied, total), timeout=180)
            await asyncio.sleep(2)  # anything applied twice would show up now
            docs = [d async for d in counters.find({})]
        finally:
            second.terminate()
            second.wait(20)
        assert {d["_id"]: d["n"] for d in docs} == {k: total // keys for k in range(keys)}
        recorded = [event_id for d in docs for event_id in d[APPLIED]]
        assert len(recorded) == len(set(recorded)) == total  # no event id twice, none missing
        assert set(recorded) == {e.id for e in events}
    finally:
        await client.drop_database(database)
        await client.close()


async def applied_at_least(applied, n: int) -> bool:
    return await applied() >= n


@pytest.fixture
async def consuming_service(stack):
    """A broker with one subscription whose handler fails on demand, for DLQ tests."""
    service = f"test{uuid.uuid4().hex[:6]}"
    topic = f"test.dlq.{service}"
    await ensure_topics(stack.bootstrap, [topic, dlq_topic(service)], partitions=1)
    processed: list[str] = []
    failing: set[str] = set()

    async def on_call(event, data) -> None:
        if data.call_id in failing:
            raise RuntimeError(f"cannot handle {data.call_id}")
        processed.append(data.call_id)

    broker = create_broker(stack.bootstrap, service=service)
    subscribe_service(broker, [Subscription(topic).on(CALL, on_call)], group_id=f"crm-{service}",
                      dead_letters=DeadLetters(broker, service),
                      policy=DeliveryPolicy(max_attempts=3, backoff_s=0.05))
    await broker.start()
    try:
        yield type("Svc", (), {"service": service, "topic": topic, "processed": processed,
                               "failing": failing, "broker": broker})
    finally:
        await broker.stop()


async def test_a_failing_message_is_dead_lettered_and_the_partition_keeps_flowing(stack, consuming_service):
    svc = consuming_service
    svc.failing.add("call-bad")
    await produce(stack.bootstrap, svc.topic, call_event(1, call_id="call-bad"))
    await produce(stack.bootstrap, svc.topic, call_event(2, call_id="call-after"))

    await eventually(lambda: "call-after" in svc.processed, timeout=30)
    [dead] = await wait_for_messages(stack.bootstrap, dlq_topic(svc.service), lambda s: True)
    assert dead.headers["crm-dlq-original-topic"] == svc.topic
    assert dead.headers["crm-dlq-original-partition"] == "0"
    assert dead.headers["crm-dlq-original-offset"] == "0"
    assert dead.headers["crm-dlq-attempts"] == "3"
    assert "cannot handle call-bad" in dead.headers["crm-dlq-error"]
    assert dead.json()["data"]["call_id"] == "call-bad"

    # The cause is fixed; re-drive puts the message back and it is processed.
    svc.failing.clear()
    result = await redrive(stack.bootstrap, svc.service)
    assert result.redriven == 1
    await eventually(lambda: "call-bad" in svc.processed, timeout=30)
    # A second re-drive finds nothing new.
    assert (await redrive(stack.bootstrap, svc.service)).redriven == 0


@pytest.mark.parametrize(
    ("label", "value", "reason"),
    [
        ("not json", b"{this is not json", "JSON"),
        ("not text", b"\x00\xff\xfe binary", "UTF-8"),
        ("missing region", None, "region"),
        ("wrong specversion", None, "specversion"),
        ("unknown type", None, "type"),
        ("2 MB value", None, "exceeds"),
    ],
)
async def test_malformed_input_goes_to_the_dead_letter_topic_and_the_consumer_goes_on(
        stack, consuming_service, label, value, reason):
    svc = consuming_service
    good = json.loads(call_event(7).model_dump_json())
    if value is None:
        bad = dict(good)
        if label == "missing region":
            bad.pop("region")
        elif label == "wrong specversion":
            bad["specversion"] = "0.3"
        elif label == "unknown type":
            bad["type"] = "crm.partner.hotline.call-deleted.v9"
        elif label == "2 MB value":
            bad["data"] = {**bad["data"], "summary": "x" * (2 * 1024 * 1024)}
        value = json.dumps(bad).encode()
    await produce(stack.bootstrap, svc.topic, value, key=b"k")
    await produce(stack.bootstrap, svc.topic, call_event(8, call_id=f"after-{label}"))

    await eventually(lambda: f"after-{label}" in svc.processed, timeout=30)
    [dead] = await wait_for_messages(stack.bootstrap, dlq_topic(svc.service), lambda s: True)
    assert dead.headers["crm-dlq-error"].startswith("contract:")
    assert reason.lower() in dead.headers["crm-dlq-error"].lower()
    assert dead.value == value
