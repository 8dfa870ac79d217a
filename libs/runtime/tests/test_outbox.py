"""The outbox relay against the real servers: events written with a state change reach
Kafka in order; a relay killed between publishing and clearing (an exception, or kill -9)
publishes again without any consumer applying the event twice; a writer appending while
the relay works keeps its event; a batch clears only the documents it published."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from crm_devstack.topics import ensure_topics
from crm_runtime import handoff
from crm_runtime.idempotency import apply_once
from crm_runtime.kafka import create_broker
from crm_runtime.leases import Lease
from crm_runtime.mongo import create_client
from crm_runtime.outbox import MARKERS, Outbox, OutboxRelay, OutgoingEvent, marker, new_document_with_outbox
from crm_runtime.revisions import RevisionConflict
from crm_runtime.rmw import read_modify_write
from crm_runtime.testing import eventually, make_event, wait_for_messages

pytestmark = pytest.mark.stack
CALL = "crm.partner.hotline.call-recorded.v1"
HERE = Path(__file__).parent


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


def relay_of(broker, db, owner="me", **kw) -> OutboxRelay:
    return OutboxRelay(broker, [db["aggregates"]], Lease(db["leases"], "relay", owner), **kw)


def summaries(seen) -> list[str]:
    return [s.json()["data"]["summary"] for s in seen]


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

    relay = relay_of(broker, db)
    assert await relay.relay_once() == 4
    seen = await wait_for_messages(stack.bootstrap, topic, lambda s: True, count=4)
    assert summaries(seen) == ["step 0", "step 1", "step 2", "step 3"]
    assert {s.key for s in seen} == {b"agg-1"}
    assert all(s.headers["content-type"] == "application/cloudevents+json" for s in seen)
    doc = await aggregates.find_one({"_id": "agg-1"})
    assert doc["outbox"] == [] and doc["outbox_pending"] is False
    assert await relay.relay_once() == 0


class RelayDied(Exception):
    pass


async def test_relay_failing_after_publishing_publishes_again_and_consumers_apply_once(stack, env):
    db, broker, topic = env
    aggregates = db["aggregates"]
    e = event(1, subject="agg-2")
    await Outbox(db).insert(aggregates, {"_id": "agg-2"}, [OutgoingEvent(topic, e)])

    class FailsBeforeClearing(OutboxRelay):
        async def _clear(self, collection, docs, ferret):
            raise RelayDied("between publishing and clearing")

    with pytest.raises(RelayDied):
        await FailsBeforeClearing(broker, [aggregates], Lease(db["leases"], "relay", "a")).relay_once()
    assert (await aggregates.find_one({"_id": "agg-2"}))["outbox_pending"] is True
    assert await db[MARKERS].count_documents({}) == 1  # marked again for the next relay

    assert await OutboxRelay(broker, [aggregates], Lease(db["leases"], "relay", "b")).relay_once() == 1
    copies = await wait_for_messages(stack.bootstrap, topic, lambda s: s.json()["id"] == e.id, count=2)
    assert len(copies) == 2

    # A consumer applying both copies, idempotent on the event id, counts it once.
    effects = db["effects"]
    applied = [await apply_once(effects, "agg-2", copy.json()["id"], {"$inc": {"count": 1}}) for copy in copies]
    assert applied == [True, False]
    assert (await effects.find_one({"_id": "agg-2"}))["count"] == 1


async def test_relay_killed_9_after_publishing_a_batch_loses_none_of_it(stack, env):
    db, broker, topic = env
    aggregates = db["aggregates"]
    events = [event(n, subject=f"agg-{n}") for n in range(30)]
    for e in events:
        await Outbox(db).insert(aggregates, {"_id": e.subject}, [OutgoingEvent(topic, e)])
    doomed = subprocess.Popen([sys.executable, str(HERE / "relay_holder.py"), stack.bootstrap, stack.mongodb_url,
                               db.name, "aggregates"], stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert doomed.stdout is not None
        assert doomed.stdout.readline().strip() == "published 30"
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
    finally:
        if doomed.poll() is None:
            doomed.kill()
    # It had unmarked the batch and not cleared it: every document still holds its event.
    assert await db[MARKERS].count_documents({}) == 0
    assert await aggregates.count_documents({"outbox_pending": True}) == 30

    # The next replica to take the lease sweeps the flags and publishes them again.
    successor = relay_of(broker, db, owner="next", poll_interval_s=0.05)
    await successor.start()
    try:
        copies = await wait_for_messages(stack.bootstrap, topic, lambda s: True, count=60)
        # the flags are cleared after the publish is acknowledged: on a loaded machine a
        # consumer can see the copies before the relay has cleared them
        await eventually(lambda: _none_pending(aggregates))
    finally:
        await successor.stop()
    assert sorted(summaries(copies)) == sorted([f"step {n}" for n in range(30)] * 2)
    assert await aggregates.count_documents({"outbox_pending": True}) == 0


async def _none_pending(aggregates) -> bool:
    return await aggregates.count_documents({"outbox_pending": True}) == 0


async def test_a_writer_appending_while_the_relay_publishes_keeps_its_event(stack, env):
    db, broker, topic = env
    aggregates = db["aggregates"]
    outbox = Outbox(db)
    for n in range(3):
        await outbox.insert(aggregates, {"_id": f"agg-{n}", "step": 0}, [OutgoingEvent(topic, event(n, f"agg-{n}"))])

    wrote = []

    class WriterInTheMiddle(OutboxRelay):
        async def _publish(self, entries):
            sent = await super()._publish(entries)
            if not wrote:  # agg-1 read and published, not cleared yet: a writer appends to it
                wrote.append(True)
                await outbox.update(aggregates, "agg-1", 0, {"$set": {"step": 1}},
                                    [OutgoingEvent(topic, event(101, "agg-1"))])
            return sent

    relay = WriterInTheMiddle(broker, [aggregates], Lease(db["leases"], "relay", "me"))
    assert await relay.relay_once() == 3
    doc = await aggregates.find_one({"_id": "agg-1"})
    assert doc["step"] == 1 and len(doc["outbox"]) == 1 and doc["outbox_pending"]  # the writer's event is kept
    assert await relay.relay_once() == 1
    seen = await wait_for_messages(stack.bootstrap, topic, lambda s: True, count=4)
    assert sorted(summaries(seen)) == ["step 0", "step 1", "step 101", "step 2"]
    assert await aggregates.count_documents({"outbox_pending": True}) == 0


async def test_writers_racing_the_running_relay_lose_no_event(stack, env):
    db, broker, topic = env
    aggregates = db["aggregates"]
    outbox = Outbox(db)
    docs, steps = 10, 6
    for d in range(docs):
        await outbox.insert(aggregates, {"_id": f"agg-{d}", "step": 0},
                            [OutgoingEvent(topic, event(d * 100, f"agg-{d}"))])
    relay = relay_of(broker, db, poll_interval_s=0.01)
    outbox.notify = relay.notify
    await relay.start()

    async def writer(d: int) -> None:
        async def load():
            doc = await aggregates.find_one({"_id": f"agg-{d}"}, {"step": 1, "rev": 1})
            return doc, doc["rev"]

        async def save(step, rev):
            await outbox.update(aggregates, f"agg-{d}", rev, {"$set": {"step": step}},
                                [OutgoingEvent(topic, event(d * 100 + step, f"agg-{d}"))])

        for _ in range(steps):
            await read_modify_write(load, save, lambda doc: doc["step"] + 1)

    try:
        await asyncio.gather(*(writer(d) for d in range(docs)))
        want = {f"step {d * 100 + s}" for d in range(docs) for s in range(steps + 1)}
        seen = await wait_for_messages(stack.bootstrap, topic, lambda s: True, count=len(want), timeout=60)
    finally:
        await relay.stop()
    assert set(summaries(seen)) == want
    # Within an aggregate, in the order written.
    for d in range(docs):
        of_doc = [int(x.split()[1]) for x in summaries(seen) if int(x.split()[1]) // 100 == d]
        assert of_doc == sorted(of_doc)


async def test_a_batch_clears_only_the_documents_it_read(stack, env):
    db, broker, topic = env
    aggregates = db["aggregates"]
    outbox = Outbox(db)
    for n in range(5):
        await outbox.insert(aggregates, {"_id": f"agg-{n}"}, [OutgoingEvent(topic, event(n, f"agg-{n}"))])
    relay = relay_of(broker, db, batch_size=3)
    assert await relay.relay_once() == 3
    assert await aggregates.count_documents({"outbox_pending": True}) == 2
    assert await db[MARKERS].count_documents({}) == 2
    assert await relay.relay_once() == 2
    assert await aggregates.count_documents({"outbox_pending": True}) == 0


async def test_a_young_marker_waits_for_its_document_and_an_old_one_is_dropped(stack, env):
    db, broker, topic = env
    aggregates = db["aggregates"]
    outbox = Outbox(db)
    old = datetime.now(UTC) - timedelta(minutes=5)
    await db[MARKERS].insert_one(marker("aggregates", "never-written", old))  # its writer died
    # A writer has marked its new document and not inserted it yet when the relay comes.
    await outbox._mark(aggregates, "on-its-way")
    relay = relay_of(broker, db)
    assert await relay.relay_once() == 0
    assert [m["doc_id"] async for m in db[MARKERS].find({})] == ["on-its-way"]
    await aggregates.insert_one(new_document_with_outbox({"_id": "on-its-way"},
                                                         [OutgoingEvent(topic, event(7, "on-its-way"))]))
    assert await relay.relay_once() == 1
    assert await db[MARKERS].count_documents({}) == 0


async def test_the_relay_publishes_what_its_process_just_inserted_without_reading_it_back(stack, env):
    db, broker, topic = env
    aggregates = db["aggregates"]
    outbox = Outbox(db)
    await asyncio.gather(*(outbox.insert(aggregates, {"_id": f"agg-{n}"}, [OutgoingEvent(topic, event(n, f"agg-{n}"))],
                                         grouped=True) for n in range(20)))
    relay = relay_of(broker, db)
    assert await relay.relay_once() == 20
    assert relay.handed == 20  # none of the 20 read back
    seen = await wait_for_messages(stack.bootstrap, topic, lambda s: True, count=20)
    assert sorted(summaries(seen)) == sorted(f"step {n}" for n in range(20))
    assert await aggregates.count_documents({"outbox_pending": True}) == 0
    assert await relay.relay_once() == 0


async def test_a_handed_document_another_process_wrote_meanwhile_is_read_and_loses_no_event(stack, env):
    db, broker, topic = env
    aggregates = db["aggregates"]
    assert await Outbox(db).insert(aggregates, {"_id": "agg-1", "step": 0}, [OutgoingEvent(topic, event(0))])
    # Another replica (its own client, so nothing handed over here) appends to it before the relay comes.
    other = create_client(stack.mongodb_url, app_name="test-other")
    try:
        await Outbox(other[db.name]).update(other[db.name]["aggregates"], "agg-1", 0, {"$set": {"step": 1}},
                                            [OutgoingEvent(topic, event(1))])
    finally:
        await other.close()
    relay = relay_of(broker, db)
    published = [await relay.relay_once() for _ in range(3)]
    assert sum(published) == 2 and published[-1] == 0  # the first round found the claim of revision 1 taken
    seen = await wait_for_messages(stack.bootstrap, topic, lambda s: True, count=2)
    assert summaries(seen) == ["step 0", "step 1"]  # each once, in the order written
    doc = await aggregates.find_one({"_id": "agg-1"})
    assert doc["step"] == 1 and doc["outbox"] == [] and not doc["outbox_pending"]


async def test_a_document_published_before_its_writer_handed_it_over_is_not_published_again(stack, env):
    db, broker, topic = env
    aggregates = db["aggregates"]
    outbox = Outbox(db)
    # The writer has marked and inserted, and has not resumed yet to hand the document over:
    # the relay finds it through its marker, publishes it and clears it.
    stored = new_document_with_outbox({"_id": "agg-1"}, [OutgoingEvent(topic, event(0))])
    await outbox._mark(aggregates, "agg-1")
    await aggregates.insert_one(stored)
    relay = relay_of(broker, db)
    assert await relay.relay_once() == 1
    # Now the writer resumes and hands it over; a repeat of its request marks it again.
    handoff.hand(aggregates, {"_id": "agg-1", "outbox": stored["outbox"], "rev": 0})
    await outbox._mark(aggregates, "agg-1")
    assert await relay.relay_once() == 0
    # A later event on the same partition (same key): a second copy would come before it.
    await outbox.insert(aggregates, {"_id": "agg-2"}, [OutgoingEvent(topic, event(1, "agg-1"))])
    assert await relay.relay_once() == 1
    seen = await wait_for_messages(stack.bootstrap, topic, lambda s: True, count=2)
    assert summaries(seen) == ["step 0", "step 1"]
    doc = await aggregates.find_one({"_id": "agg-1"})
    assert doc["outbox"] == [] and not doc["outbox_pending"] and doc["rev"] == 1  # cleared once, not rewritten
