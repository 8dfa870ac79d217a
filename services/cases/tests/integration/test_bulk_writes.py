"""Shared documents written in bulk (queue parts, work-list buckets, collective facts) on
the real store: a writer that read a document before another wrote it does not undo that
write, bulk and single writers at once both land, and two replicas that each remember
what they wrote last lose none of each other's facts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from cases.adapters.batch_store import ContactBatchStore, fact_bucket
from cases.adapters.bulk import update_documents
from cases.adapters.fact_buckets import bucket_facts
from crm_runtime.leases import Timers
from crm_runtime.mongo import create_client
from crm_runtime.outbox import Outbox
from crm_runtime.rmw import update_document
from crm_runtime.testing import unique_suffix

pytestmark = pytest.mark.stack


def adding(item: str):
    return lambda doc: {"items": [*(doc or {}).get("items", []), item]}


@pytest.fixture
async def collection(stack):
    client = create_client(stack.mongodb_url, app_name="test")
    db = client[f"crm_cases{unique_suffix()}"]
    yield db["shared"]
    await client.drop_database(db.name)
    await client.close()


async def test_a_bulk_write_from_a_stale_read_keeps_what_another_writer_wrote_since(collection):
    ids = [f"doc-{n}" for n in range(6)]
    await update_documents(collection, {i: adding("first") for i in ids})
    stale = {d["_id"]: d async for d in collection.find({})}  # read ...
    for i in ids[:3]:
        await update_document(collection, i, adding("theirs"))  # ... another writer writes ...

    await update_documents(collection, {i: adding("ours") for i in ids}, loaded=stale)  # ... we write

    items = {d["_id"]: d["items"] async for d in collection.find({})}
    assert all(items[i] == ["first", "theirs", "ours"] for i in ids[:3])
    assert all(items[i] == ["first", "ours"] for i in ids[3:])


async def test_bulk_and_single_writers_of_the_same_documents_at_once_both_land(collection):
    ids = [f"doc-{n}" for n in range(20)]
    await update_documents(collection, {i: adding("first") for i in ids})

    await asyncio.gather(update_documents(collection, {i: adding("bulk") for i in ids}),
                         *(update_document(collection, i, adding("single"), attempts=50) for i in ids))

    items = {d["_id"]: d["items"] async for d in collection.find({})}
    assert all(sorted(items[i]) == ["bulk", "first", "single"] for i in ids)


async def test_two_replicas_filing_facts_under_one_bucket_in_turn_lose_none(stack, collection):
    # Each replica its own client, so each remembers only what it wrote itself.
    clients = [create_client(stack.mongodb_url, app_name=f"replica-{n}") for n in range(2)]
    try:
        replicas = []
        for client in clients:
            db = client[collection.database.name]
            replicas.append(ContactBatchStore(db, Outbox(db), Timers(db["timers"], "test")))
        key, day = "楼盘1|*|leak", datetime.now(UTC)
        bucket = fact_bucket(key, day.date())
        stale = []
        for n in range(6):
            store = replicas[n % 2]
            read = await store.fact_buckets([bucket], filing=[bucket])
            contact = {"_id": f"contact-{n}", "received_at": day, "project": "楼盘1", "category": "leak"}
            stale.append(await store.add_facts([(key, contact)], read))
        # The third and fourth: each replica remembered its own last write, and the other had
        # written since: its revision claim caught that, and it filed on the other's facts
        # (then forgot the bucket, so each reads it the next time).
        assert stale == [set(), set(), {bucket}, {bucket}, set(), set()]
        again = await replicas[0].fact_buckets([bucket], filing=[bucket])
        await replicas[0].add_facts([(key, {"_id": "contact-6", "received_at": day, "project": "楼盘1",
                                            "category": "leak"})], again)
        stored = await clients[0][collection.database.name]["collective_facts"].find_one({"_id": bucket})
        assert sorted(f["_id"] for f in bucket_facts(stored)) == [f"contact-{n}" for n in range(7)]
    finally:
        for client in clients:
            await client.close()
