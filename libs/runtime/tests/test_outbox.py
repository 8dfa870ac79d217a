"""The outbox relay against the real servers: events written with a state change reach
Kafka in order, and a relay killed between publishing and marking sent publishes again
without any consumer applying the event twice."""

from __future__ import annotations

import uuid

import pytest
from crm_devstack.topics import ensure_topics
from crm_runtime.idempotency import apply_once
from crm_runtime.kafka import create_broker
from crm_runtime.leases import Lease
from crm_runtime.mongo import create_client
from crm_runtime.outbox import Outbox, OutboxRelay, OutgoingEvent
from crm_runtime.revisions import RevisionConflict
from crm_runtime.testing import make_event, wait_for_messages

pytestmark = pytest.mark.stack
CALL = "crm.partner.hotline.call-recorded.v1"


def event(n: int, subject: str = "agg-1"):
    return make_event(CALL, {"call_id": f"call-{n}", "caller_phone": "13800018000",
                             "started_at": "2026-03-01T09:30:00+08:00", "duration_s": 1,
                             "summary": f"step {n}"}, subject=subject)


@pytest.fixture
async def env(stack):
    client = create_client(stack.mongodb_url, app_name="test")
    name = f"test_outbox_{uuid.uuid4().hex[:8]}"
    topic = f"test.outbox.{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.bootstrap, [topic], partitions=2)
    broker = create_broker(stack.bootstrap, service="test")
    await broker.connect()
    db = client[name]
    yield db, broker, topic
    await broker.stop()
    await client.drop_database(name)
    await client.close()


async def test_state_change_and_its_events_are_one_write_and_reach_kafka_in_order(stack, env):
    db, broker, topic = env
    aggregates = db["aggregates"]
    outbox = Outbox(db)
    assert await outbox.insert(aggregates, {"_id": "agg-1", "step": 0}, [OutgoingEvent(topic, event(0))])
    for n in (1, 2, 3):
        await outbox.update(aggregates, "agg-1", n - 1, {"$set": {"step": n}}, [OutgoingEvent(topic, event(n))])
    with pytest.raises(RevisionConflict):  # a writer that read revision 1 is too late
        await outbox.update(aggregates, "agg-1", 1, {"$set": {"step": 99}}, [OutgoingEvent(topic, event(99))])
    doc = await aggregates.find_one({"_id": "agg-1"})
    assert doc["step"] == 3 and len(doc["outbox"]) == 4 and doc["outbox_pending"] is True
    # A writer that read an older revision is refused again.
    with pytest.raises(RevisionConflict):
        await outbox.update(aggregates, "agg-1", 2, {"$set": {"step": 98}}, [OutgoingEvent(topic, event(98))])
    assert (await aggregates.find_one({"_id": "agg-1"}))["step"] == 3

    relay = OutboxRelay(broker, [aggregates], Lease(db["leases"], "relay", "me"))
    assert await relay.relay_once() == 4
    seen = await wait_for_messages(stack.bootstrap, topic, lambda s: True, count=4)
    assert [s.json()["data"]["summary"] for s in seen] == ["step 0", "step 1", "step 2", "step 3"]
    assert {s.key for s in seen} == {b"agg-1"}
    assert all(s.headers["content-type"] == "application/cloudevents+json" for s in seen)
    doc = await aggregates.find_one({"_id": "agg-1"})
    assert doc["outbox"] == [] and doc["outbox_pending"] is False
    assert await relay.relay_once() == 0


class RelayDied(Exception):
    pass


async def test_relay_killed_after_publishing_publishes_again_and_consumers_apply_once(stack, env):
    db, broker, topic = env
    aggregates = db["aggregates"]
    e = event(1, subject="agg-2")
    await Outbox(db).insert(aggregates, {"_id": "agg-2"}, [OutgoingEvent(topic, e)])

    class CrashAfterPublish(OutboxRelay):
        async def _relay_document(self, collection, doc):
            entries = doc["outbox"]
            for entry in entries:
                await self.broker.publish(entry["value"].encode(), topic=entry["topic"],
                                          key=entry["key"].encode())
            raise RelayDied("between publishing and marking sent")

    with pytest.raises(RelayDied):
        await CrashAfterPublish(broker, [aggregates], Lease(db["leases"], "relay", "a")).relay_once()
    assert (await aggregates.find_one({"_id": "agg-2"}))["outbox_pending"] is True
    assert await db["outbox_markers"].count_documents({}) == 1  # re-marked for the next relay

    assert await OutboxRelay(broker, [aggregates], Lease(db["leases"], "relay", "b")).relay_once() == 1
    copies = await wait_for_messages(stack.bootstrap, topic, lambda s: s.json()["id"] == e.id, count=2)
    assert len(copies) == 2

    # A consumer applying both copies, idempotent on the event id, counts it once.
    effects = db["effects"]
    applied = [await apply_once(effects, "agg-2", copy.json()["id"], {"$inc": {"count": 1}}) for copy in copies]
    assert applied == [True, False]
    assert (await effects.find_one({"_id": "agg-2"}))["count"] == 1
