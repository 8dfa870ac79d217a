"""Poison messages on the real Kafka: a message no decoder can read (nested thousands of
levels deep, a number of 10^30 seconds) is dead-lettered once, with its reason, and the
valid event behind it on the same key is applied; a batch that is delivered again never
dead-letters its bad messages a second time. All through the service consumer
(`subscribe_service`), with per-event and with batch handlers."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from crm_contracts.topics import dlq_topic
from crm_devstack.topics import ensure_topics
from crm_runtime.consuming import subscribe_service
from crm_runtime.kafka import BatchSubscription, DeadLetters, DeliveryPolicy, Subscription, create_broker
from crm_runtime.testing import eventually, make_event, wait_for_messages
from prometheus_client import CollectorRegistry, Counter

pytestmark = pytest.mark.stack

CALL = "crm.partner.hotline.call-recorded.v1"
KEY = b"customer-1"


def call(call_id: str, **overrides) -> bytes:
    data = {"call_id": call_id, "caller_phone": "13800018000", "started_at": "2026-03-01T09:30:00+08:00",
            "duration_s": 60, "summary": "a valid call"}
    data.update(overrides)
    return make_event(CALL, data, subject=KEY.decode()).model_dump_json().encode()


def nested(call_id: str, depth: int = 3000) -> bytes:
    """A structurally valid event whose `data` holds a few KB of {"a":{"a":...}}."""
    return call(call_id, notes=0).replace(b'"notes":0', b'"notes":' + b'{"a":' * depth + b"1" + b"}" * depth)


POISON = {
    "nested 3000 deep": nested("poison-nested"),
    "nested arrays": call("poison-arrays", notes=0).replace(b'"notes":0', b'"notes":' + b"[" * 5000 + b"]" * 5000),
    "65 levels": nested("poison-65", depth=65),
    "duration 10^30": call("poison-duration", duration_s=10**30),
    "one-digit phone": call("poison-phone", caller_phone="1"),
}


async def produce_all(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=8 * 1024 * 1024)
    await producer.start()
    try:
        for value in values:
            await producer.send(topic, value, key=KEY)
        await producer.flush()
    finally:
        await producer.stop()


async def dead_letters_after_quiet(bootstrap: str, service: str, expected: int) -> list:
    """The DLQ once `expected` letters arrived and two more seconds brought no others."""
    await wait_for_messages(bootstrap, dlq_topic(service), lambda s: True, count=expected)
    await asyncio.sleep(2)
    return await wait_for_messages(bootstrap, dlq_topic(service), lambda s: True, count=expected, timeout=5)


async def new_service(stack) -> tuple[str, str]:
    service = f"test{uuid.uuid4().hex[:6]}"
    topic = f"test.poison.{service}"
    await ensure_topics(stack.bootstrap, [topic, dlq_topic(service)], partitions=1)
    return service, topic


@pytest.mark.parametrize("label", list(POISON))
async def test_a_poison_message_ahead_of_a_valid_one_is_dead_lettered_once_and_the_valid_one_applied(
        stack, label, caplog):
    service, topic = await new_service(stack)
    applied: list[str] = []

    async def on_call(event, data) -> None:
        applied.append(data.call_id)

    await produce_all(stack.bootstrap, topic, [POISON[label], call("valid-after")])
    broker = create_broker(stack.bootstrap, service=service)
    violations = Counter("crm_contract_violations_total", "Contract violations", ["topic"],
                         registry=CollectorRegistry())
    subscribe_service(broker, [Subscription(topic).on(CALL, on_call)], group_id=f"crm-{service}",
                      dead_letters=DeadLetters(broker, service, violations=violations),
                      policy=DeliveryPolicy(max_attempts=3, backoff_s=0.05))
    with caplog.at_level(logging.WARNING):
        await broker.start()
        try:
            await eventually(lambda: "valid-after" in applied, timeout=30)
            dead = await dead_letters_after_quiet(stack.bootstrap, service, 1)
        finally:
            await broker.stop()

    assert applied == ["valid-after"]
    [letter] = dead
    assert letter.value == POISON[label]
    assert letter.headers["crm-dlq-error"].startswith("contract:")
    assert letter.headers["crm-dlq-attempts"] == "1"
    assert letter.headers["crm-dlq-original-offset"] == "0"
    assert violations.labels(topic=topic)._value.get() == 1
    # One log line for the failure, no traceback.
    assert [r.message for r in caplog.records if r.message == "dead-lettered message"] == ["dead-lettered message"]
    assert not [r for r in caplog.records if r.exc_info]


class FlakyDeadLetters(DeadLetters):
    """Fails once to write the dead letter of one offset, as a broker hiccup would: the
    batch is delivered again, with the letters before that offset already written."""

    def __init__(self, *args, fail_offset: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.fail_offset = fail_offset
        self.failed = False

    async def send_record(self, record, reason: str, attempts: int) -> None:
        if record.offset == self.fail_offset and not self.failed:
            self.failed = True
            raise ConnectionError("the dead-letter topic did not answer")
        await super().send_record(record, reason, attempts)


@pytest.mark.parametrize(("handler", "fail_offset"), [
    ("batch", 4),  # the dead letter of a contract violation fails
    ("batch", 3),  # the dead letter of the event the handler refuses fails
    ("per-event", 4),
    ("per-event", 3),
])
async def test_a_batch_delivered_again_dead_letters_each_bad_message_once(stack, handler, fail_offset):
    service, topic = await new_service(stack)
    applied: list[str] = []

    async def on_calls(batch) -> None:
        if any(data.call_id == "rejected" for _, data in batch):
            raise RuntimeError("the handler refuses this one")
        applied.extend(data.call_id for _, data in batch)

    async def on_call(event, data) -> None:
        await on_calls([(event, data)])

    values = [b"{not json", nested("poison-nested"), call("good-1"), call("rejected"),
              call("poison-duration", duration_s=10**30), call("good-2")]
    await produce_all(stack.bootstrap, topic, values)
    broker = create_broker(stack.bootstrap, service=service)
    flaky = FlakyDeadLetters(broker, service, fail_offset=fail_offset)
    singles = [Subscription(topic).on(CALL, on_call)] if handler == "per-event" else []
    batches = [BatchSubscription(topic, (CALL,), on_calls, max_records=100)] if handler == "batch" else []
    subscribe_service(broker, singles, batches, group_id=f"crm-{service}", dead_letters=flaky,
                      policy=DeliveryPolicy(max_attempts=2, backoff_s=0.01))
    await broker.start()
    try:
        await eventually(lambda: "good-2" in applied, timeout=60)
        dead = await dead_letters_after_quiet(stack.bootstrap, service, 4)
    finally:
        await broker.stop()

    assert flaky.failed, "the batch should have been delivered twice"
    offsets = sorted(int(d.headers["crm-dlq-original-offset"]) for d in dead)
    assert offsets == [0, 1, 3, 4]  # each bad one exactly once, though its batch came twice
    assert {"good-1", "good-2"} <= set(applied)
    reasons = {int(d.headers["crm-dlq-original-offset"]): d.headers["crm-dlq-error"] for d in dead}
    assert reasons[3].startswith("RuntimeError") and all(reasons[o].startswith("contract:") for o in (0, 1, 4))
