"""The batch path on the real Kafka and MongoDB-protocol server: a poison event in a batch
is dead-lettered alone, the rest applied once; a batch delivered again changes nothing;
and a service is one consumer group member for all of its topics. (A batch consumer
killed with SIGKILL mid-batch: test_delivery.py, next to the per-event one.)"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from crm_contracts.topics import dlq_topic
from crm_devstack.topics import ensure_topics
from crm_runtime.app import Wiring, create_service_app
from crm_runtime.consuming import subscribe_service
from crm_runtime.idempotency import APPLIED, apply_once_many
from crm_runtime.kafka import BatchSubscription, DeadLetters, DeliveryPolicy, Subscription, create_broker
from crm_runtime.revisions import REV
from crm_runtime.settings import ServiceSettings
from crm_runtime.testing import eventually, make_event, running_app, wait_for_messages

pytestmark = pytest.mark.stack

CALL = "crm.partner.hotline.call-recorded.v1"


def call_event(n: int, subject: str | None = None, **overrides):
    data = {"call_id": f"call-{n}", "caller_phone": "13800018000", "started_at": "2026-03-01T09:30:00+08:00",
            "duration_s": 60, "summary": f"call number {n}"}
    data.update(overrides)
    return make_event(CALL, data, subject=subject or str(n))


async def produce_events(bootstrap: str, topic: str, values: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for key, value in values:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def encoded(events) -> list[tuple[bytes, bytes]]:
    return [(e.subject.encode(), e.model_dump_json().encode()) for e in events]


def counting_batch_handler(effects, poison: set[str]):
    """Applies the batch's events in order and fails at a poison one: the events before it
    are stored when the batch fails, and stored again when its parts are retried."""

    async def on_calls(batch) -> None:
        for event, data in batch:
            if data.call_id in poison:
                raise ValueError(f"cannot apply {data.call_id}")
            await apply_once_many(effects, [(event.subject, event.id, {"$inc": {"n": 1}})])
    return on_calls


async def test_a_poison_event_in_a_batch_is_dead_lettered_alone_and_the_rest_applied_once(stack, db):
    service = f"test{uuid.uuid4().hex[:6]}"
    topic = f"test.batchpoison.{service}"
    await ensure_topics(stack.bootstrap, [topic, dlq_topic(service)], partitions=1)
    events = [call_event(n % 7, call_id="poison" if n == 41 else f"call-{n}") for n in range(120)]
    values = encoded(events)
    values.insert(80, (b"k", b"{not json"))
    await produce_events(stack.bootstrap, topic, values)

    effects = db["effects"]
    broker = create_broker(stack.bootstrap, service=service)
    subscribe_service(broker, [], [BatchSubscription(topic, (CALL,), counting_batch_handler(effects, {"poison"}))],
                      group_id=f"crm-{service}", dead_letters=DeadLetters(broker, service),
                      policy=DeliveryPolicy(max_attempts=2, backoff_s=0.01))
    await broker.start()
    try:
        dead = await wait_for_messages(stack.bootstrap, dlq_topic(service), lambda s: True, count=2, timeout=60)
        await eventually(lambda: total_of(effects, 119), timeout=30)
        await asyncio.sleep(2)  # a second dead letter, or an effect applied twice, would show up now
        dead = await wait_for_messages(stack.bootstrap, dlq_topic(service), lambda s: True, count=2)
    finally:
        await broker.stop()

    assert await total_of(effects, 119)
    by_reason = sorted((d.headers["crm-dlq-error"], d.headers["crm-dlq-original-offset"]) for d in dead)
    assert len(dead) == 2
    assert by_reason[0][0].startswith("ValueError: cannot apply poison") and by_reason[0][1] == "41"
    assert by_reason[1][0].startswith("contract:") and by_reason[1][1] == "80"


async def total_of(effects, expected: int) -> bool:
    return sum([d.get("n", 0) async for d in effects.find({})]) == expected


async def test_a_batch_delivered_again_changes_nothing(stack, db):
    service = f"test{uuid.uuid4().hex[:6]}"
    topic = f"test.batchagain.{service}"
    await ensure_topics(stack.bootstrap, [topic, dlq_topic(service)], partitions=2)
    await produce_events(stack.bootstrap, topic, encoded([call_event(n % 13) for n in range(300)]))
    effects = db["effects"]
    seen: list[int] = []

    async def on_calls(batch) -> None:
        await apply_once_many(effects, [(e.subject, e.id, {"$inc": {"n": 1}}) for e, _ in batch])
        seen.append(len(batch))

    async def consume_all(group: str) -> None:
        seen.clear()
        broker = create_broker(stack.bootstrap, service=service)
        subscribe_service(broker, [], [BatchSubscription(topic, (CALL,), on_calls)], group_id=group,
                          dead_letters=DeadLetters(broker, service), policy=DeliveryPolicy())
        await broker.start()
        try:
            await eventually(lambda: sum(seen) >= 300, timeout=60)
        finally:
            await broker.stop()

    await consume_all(f"crm-{service}-first")
    before = {d["_id"]: (d["n"], d[REV], d[APPLIED]) async for d in effects.find({})}
    assert sum(n for n, _, _ in before.values()) == 300
    await consume_all(f"crm-{service}-again")  # a new group: every batch delivered again
    after = {d["_id"]: (d["n"], d[REV], d[APPLIED]) async for d in effects.find({})}
    assert after == before


async def test_a_service_is_one_group_member_for_all_its_topics_and_keeps_each_keys_order(stack):
    service = f"test{uuid.uuid4().hex[:6]}"
    topics = [f"test.one.{service}.{name}" for name in ("a", "b", "c")]
    await ensure_topics(stack.bootstrap, [*topics, dlq_topic(service)], partitions=3)
    order: dict[str, list[int]] = {}
    batched: list[str] = []

    async def on_call(event, data) -> None:
        await asyncio.sleep(0.001)  # let keys interleave
        order.setdefault(event.subject, []).append(int(data.call_id.split("-")[1]))

    async def on_calls(batch) -> None:
        batched.extend(data.call_id for _, data in batch)

    def wire(ctx):
        return Wiring(subscriptions=[Subscription(topics[0], workers=4).on(CALL, on_call),
                                     Subscription(topics[1], workers=4).on(CALL, on_call)],
                      batch_subscriptions=[BatchSubscription(topics[2], (CALL,), on_calls)])

    settings = ServiceSettings(CRM_SERVICE_NAME=service, KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap,
                               MONGODB_URL=stack.mongodb_url, CRM_DEV_MODE=True)
    app = create_service_app(settings, title="one consumer", description="d", wire=wire)
    async with running_app(app):
        for topic in topics[:2]:
            await produce_events(stack.bootstrap, topic, encoded(
                [call_event(n, subject=f"{topic[-1]}{n % 5}", call_id=f"{topic[-1]}-{n}") for n in range(100)]))
        await produce_events(stack.bootstrap, topics[2], encoded([call_event(n) for n in range(50)]))
        await eventually(lambda: sum(map(len, order.values())) >= 200 and len(batched) >= 50, timeout=60)
        members = await group_members(stack.bootstrap, settings.consumer_group)

    assert len(members) == 1, members
    assert sorted(members[0]) == sorted(topics)  # the one member holds every topic's partitions
    for key, calls in order.items():
        assert calls == sorted(calls), key  # one key's events in the order produced
    assert len(order) == 10


async def group_members(bootstrap: str, group: str) -> list[set[str]]:
    """Per member of the consumer group, the topics assigned to it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    [described] = response.groups
    members = described[-1]
    return [{topic for topic, _ in ConsumerProtocolMemberAssignment.decode(m[-1]).assignment} for m in members]
