"""Shared documents written in bulk (queue parts, work-list buckets, collective facts) on
the real store: a writer that read a document before another wrote it does not undo that
write, and bulk and single writers at once both land."""

from __future__ import annotations

import asyncio

import pytest
from cases.adapters.bulk import update_documents
from crm_runtime.mongo import create_client
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
