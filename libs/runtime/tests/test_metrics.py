"""What an operator reads on /metrics, against the real servers: the outbox backlog rising
and draining, consumer lag while a handler is stuck and after it recovers, and dead
letters counted by topic."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager

import httpx
import pytest
from crm_devstack.topics import ensure_topics
from crm_runtime.app import ServiceContext, Wiring, create_service_app
from crm_runtime.kafka import Subscription
from crm_runtime.mongo import create_client
from crm_runtime.outbox import OutgoingEvent
from crm_runtime.settings import ServiceSettings
from crm_runtime.testing import eventually, make_event, produce, running_app, wait_for_messages
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.stack

CALL = "crm.partner.hotline.call-recorded.v1"


def call_event(n: int):
    return make_event(CALL, {"call_id": f"call-{n}", "caller_phone": "13800018000",
                             "started_at": "2026-03-01T09:30:00+08:00", "duration_s": 60,
                             "summary": f"call {n}"}, subject=str(n))


def service_settings(stack) -> ServiceSettings:
    tag = uuid.uuid4().hex[:8]
    return ServiceSettings(CRM_SERVICE_NAME="metricstest", KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap,
                           MONGODB_URL=stack.mongodb_url, CRM_DATABASE_SUFFIX=f"_{tag}",
                           CRM_CONSUMER_GROUP=f"crm-metrics-{tag}", CRM_DEV_MODE=True,
                           CRM_OUTBOX_POLL_INTERVAL_S=0.1, CRM_HANDLER_MAX_ATTEMPTS=1)


def sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


async def drop(stack, database: str) -> None:
    client = create_client(stack.mongodb_url, app_name="test")  # the service's own is closed by now
    await client.drop_database(database)
    await client.close()


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return response.text


async def test_outbox_backlog_counts_pending_events_until_the_relay_has_published_them(stack):
    topic = f"test.metrics.outbox.{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.bootstrap, [topic], partitions=1)
    contexts: list[ServiceContext] = []

    def wire(ctx: ServiceContext) -> Wiring:
        contexts.append(ctx)
        return Wiring(outbox_collections=["things"])

    app = create_service_app(service_settings(stack), title="metrics", description="d", wire=wire)
    ctx = contexts[0]
    try:
        # Written before the service runs, so the relay has not published them yet.
        for n in range(3):
            await ctx.outbox.insert(ctx.db["things"], {"_id": f"thing-{n}"},
                                    [OutgoingEvent(topic, call_event(10 * n + k)) for k in range(2)])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as idle:
            assert sample(await scrape(idle), "crm_outbox_pending_events", collection="things") == 6

        async with running_app(app) as client:
            async def drained() -> bool:
                return sample(await scrape(client), "crm_outbox_pending_events", collection="things") == 0

            await eventually(drained, timeout=30)
            await wait_for_messages(stack.bootstrap, topic, lambda seen: True, count=6)
    finally:
        await drop(stack, ctx.db.name)


@asynccontextmanager
async def stuck_service(stack, topic: str, *, workers: int = 1):
    """A running service whose handler of `topic` waits until the yielded gate is set;
    yields (HTTP client, gate, ids of the events handled)."""
    gate = asyncio.Event()
    handled: list[str] = []

    async def stuck_until_released(event, data) -> None:
        await gate.wait()
        handled.append(event.id)

    contexts: list[ServiceContext] = []

    def wire(ctx: ServiceContext) -> Wiring:
        contexts.append(ctx)
        return Wiring(subscriptions=[Subscription(topic, workers=workers).on(CALL, stuck_until_released)])

    app = create_service_app(service_settings(stack), title="metrics", description="d", wire=wire)
    try:
        async with running_app(app) as client:
            yield client, gate, handled
    finally:
        await drop(stack, contexts[0].db.name)


async def test_consumer_lag_while_a_handler_is_stuck_then_zero_and_dead_letters_by_topic(stack):
    topic = f"test.metrics.lag.{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.bootstrap, [topic], partitions=1)
    await produce(stack.bootstrap, topic, b"this is not a CloudEvent", key=b"poison")
    for n in range(5):
        await produce(stack.bootstrap, topic, call_event(n))

    async with stuck_service(stack, topic) as (client, gate, handled):
        async def lag_is(expected: int) -> bool:
            text = await scrape(client)
            return sample(text, "crm_consumer_lag", topic=topic, partition="0") == expected

        # The poison message is dead-lettered at once; it arrived in one batch with the five
        # behind the stuck handler, and a batch is committed only once all of it is done.
        # Lag is 6 from the assignment on (nothing committed yet); the counters move only
        # once the dead letter is published, so wait for all three together.
        async def poison_counted_behind_the_stuck_handler() -> bool:
            text = await scrape(client)
            return (sample(text, "crm_consumer_lag", topic=topic, partition="0") == 6
                    and sample(text, "crm_dead_letters_total", topic=topic) == 1
                    and sample(text, "crm_contract_violations_total", topic=topic) == 1)

        await eventually(poison_counted_behind_the_stuck_handler, timeout=60)
        assert not handled  # the five are still behind the stuck handler

        gate.set()
        await eventually(lambda: lag_is(0), timeout=30)
        assert len(handled) == 5


async def test_consumer_lag_covers_every_partition_of_a_subscription_with_workers(stack):
    # A subscription with workers (as cases' contacts, keys side by side): lag is reported
    # for all its partitions.
    topic = f"test.metrics.workers.{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.bootstrap, [topic], partitions=2)
    for n in range(8):
        await produce(stack.bootstrap, topic, call_event(n))

    async with stuck_service(stack, topic, workers=2) as (client, gate, handled):
        async def total_lag() -> float:
            text = await scrape(client)
            lags = [sample(text, "crm_consumer_lag", topic=topic, partition=p) for p in ("0", "1")]
            return sum(lag for lag in lags if lag is not None) if None not in lags else -1

        await eventually(lambda: _equals(total_lag, 8), timeout=60)
        gate.set()
        await eventually(lambda: _equals(total_lag, 0), timeout=30)
        assert len(handled) == 8


async def _equals(measure, expected: float) -> bool:
    return await measure() == expected
