"""Cases inserted in bulk with their events (bulk.insert_with_outbox) on the real stack:
the process's relay publishes them from the handoff, each event once, and a case written
again after its insert (here or by another replica) publishes its current events too."""

from __future__ import annotations

import uuid

import pytest
from cases.adapters.bulk import insert_with_outbox
from crm_devstack.topics import ensure_topics
from crm_runtime.kafka import create_broker
from crm_runtime.leases import Lease
from crm_runtime.mongo import create_client
from crm_runtime.outbox import Outbox, OutboxRelay, OutgoingEvent
from crm_runtime.testing import make_event, unique_suffix, wait_for_messages

pytestmark = pytest.mark.stack
CALL = "crm.partner.hotline.call-recorded.v1"


def event(case_id: str, step: int):
    return make_event(CALL, {"call_id": f"{case_id}-{step}", "caller_phone": "13800018000",
                             "started_at": "2026-03-01T09:30:00+08:00", "duration_s": 1,
                             "summary": f"{case_id} step {step}"}, subject=case_id)


@pytest.fixture
async def env(stack):
    client = create_client(stack.mongodb_url, app_name="test")
    db = client[f"crm_cases{unique_suffix()}"]
    topic = f"test.cases.outbox.{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.bootstrap, [topic], partitions=1)  # one partition: one order to check
    broker = create_broker(stack.bootstrap, service="test")
    await broker.connect()
    yield db, broker, topic
    await broker.stop()
    await client.drop_database(db.name)
    await client.close()


async def relay_all(relay: OutboxRelay) -> None:
    while await relay.relay_once():
        pass


async def test_cases_inserted_in_bulk_are_published_once_and_a_case_written_since_with_its_current_events(
        stack, env):
    db, broker, topic = env
    cases, outbox = db["cases"], Outbox(db)
    ids = ["case-untouched", "case-changed-here", "case-changed-elsewhere"]
    existed = await insert_with_outbox(outbox, cases, [({"_id": cid, "step": 0}, [OutgoingEvent(topic, event(cid, 0))])
                                                       for cid in ids])
    assert existed == set()
    # A staff action in this process (CaseRepository.save goes through Outbox.update) ...
    await outbox.update(cases, "case-changed-here", 0, {"$set": {"step": 1}},
                        [OutgoingEvent(topic, event("case-changed-here", 1))])
    # ... and one on another replica (its own client: nothing handed over there).
    other = create_client(stack.mongodb_url, app_name="test-other")
    try:
        await Outbox(other[db.name]).update(other[db.name]["cases"], "case-changed-elsewhere", 0,
                                            {"$set": {"step": 1}},
                                            [OutgoingEvent(topic, event("case-changed-elsewhere", 1))])
    finally:
        await other.close()

    relay = OutboxRelay(broker, [cases], Lease(db["leases"], "relay", "me"))
    await relay_all(relay)
    assert relay.handed == 2  # the untouched case and the one changed elsewhere were not read back first
    # Redelivered: the same bulk insert again leaves every case as it is and publishes nothing more.
    assert await insert_with_outbox(outbox, cases, [({"_id": cid, "step": 0}, [OutgoingEvent(topic, event(cid, 0))])
                                                    for cid in ids]) == set(ids)
    await relay_all(relay)
    await insert_with_outbox(outbox, cases, [({"_id": "sentinel"}, [OutgoingEvent(topic, event("sentinel", 0))])])
    await relay_all(relay)

    seen = [s.json()["data"]["summary"] for s in
            await wait_for_messages(stack.bootstrap, topic, lambda s: True, count=6)]
    assert seen[-1] == "sentinel step 0"  # nothing published twice before it
    assert sorted(seen[:-1]) == sorted(["case-untouched step 0", "case-changed-here step 0", "case-changed-here step 1",
                                        "case-changed-elsewhere step 0", "case-changed-elsewhere step 1"])
    for cid in ids[1:]:  # each case's events in the order written
        assert [s for s in seen if s.startswith(cid)] == [f"{cid} step 0", f"{cid} step 1"]
    docs = {d["_id"]: d async for d in cases.find({})}
    assert all(d["outbox"] == [] and not d["outbox_pending"] for d in docs.values())
    assert docs["case-changed-here"]["step"] == 1 and docs["case-changed-elsewhere"]["step"] == 1
