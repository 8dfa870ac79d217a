"""The read-modify-write helper against the real MongoDB-protocol server: concurrent
writers of one document lose no change, a change with nothing to do writes nothing, and a
writer that keeps losing gives up after its bound, and a claim left by a writer that
died is waited out, not given up on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from crm_runtime.idempotency import apply_once
from crm_runtime.revisions import CLAIMS, REV, RevisionConflict
from crm_runtime.rmw import read_modify_write, update_document

pytestmark = pytest.mark.stack


async def test_concurrent_writers_of_one_document_lose_no_change(db):
    counters = db["counters"]

    def add(n: int):
        return lambda doc: {"total": (doc or {}).get("total", 0) + n, f"by_{n}": True}

    await asyncio.gather(*(update_document(counters, "c1", add(n), attempts=100) for n in range(1, 9)))
    doc = await counters.find_one({"_id": "c1"})
    assert doc["total"] == sum(range(1, 9))
    assert all(doc[f"by_{n}"] for n in range(1, 9))


async def test_a_change_with_nothing_to_do_writes_nothing(db):
    docs = db["docs"]
    await update_document(docs, "d1", lambda doc: {"tags": ["a"]})
    rev = (await docs.find_one({"_id": "d1"}))[REV]
    written = await update_document(docs, "d1", lambda doc: None if "a" in doc["tags"] else {"tags": ["a"]})
    assert written is None
    assert (await docs.find_one({"_id": "d1"}))[REV] == rev


async def test_a_writer_that_keeps_losing_gives_up_after_its_bound(db):
    rounds = 0

    async def load():
        return {"v": 1}, 0

    async def save(_written, _rev):
        nonlocal rounds
        rounds += 1
        raise RevisionConflict("x")

    with pytest.raises(RevisionConflict):
        await read_modify_write(load, save, lambda s: {"v": 2}, attempts=3, what="x", wait_out_s=0)
    assert rounds == 3


async def test_apply_once_counts_each_event_once_even_when_redeliveries_race(db):
    effects = db["effects"]
    ids = ["e1", "e2", "e3"]
    results = await asyncio.gather(*(apply_once(effects, "agg", i, {"$inc": {"n": 1}}) for i in ids * 3))
    assert sum(results) == 3
    assert (await effects.find_one({"_id": "agg"}))["n"] == 3


async def test_apply_once_waits_out_a_claim_left_by_a_writer_that_died_instead_of_failing(db):
    """A consumer killed between claiming a revision and writing it leaves the claim; the
    partition's next owner can get the event before the claim is stale, and failing there
    would dead-letter a valid event."""
    effects = db["effects"]
    await apply_once(effects, "a", "e0", {"$inc": {"n": 1}})  # now at revision 1
    await db[CLAIMS].insert_one({"_id": f"{effects.name}/a@2", "at": datetime.now(UTC) - timedelta(seconds=8)})
    assert await apply_once(effects, "a", "e1", {"$inc": {"n": 1}})
    assert not await apply_once(effects, "a", "e1", {"$inc": {"n": 1}})
    assert (await effects.find_one({"_id": "a"}))["n"] == 2


async def test_update_document_waits_out_a_claim_left_by_a_writer_that_died(db):
    """Every shared document (roll-ups, queue buckets, fact buckets) is written through this
    loop: 20 quick rounds take milliseconds, and giving up then would fail the batch and
    dead-letter valid events while the dead writer's claim is still fresh."""
    docs = db["shared"]
    await update_document(docs, "d", lambda doc: {"n": 1})  # created at revision 0
    await update_document(docs, "d", lambda doc: {"n": doc["n"] + 1})  # revision 1
    await db[CLAIMS].insert_one({"_id": f"{docs.name}/d@2", "at": datetime.now(UTC) - timedelta(seconds=8)})
    await update_document(docs, "d", lambda doc: {"n": doc["n"] + 1})
    doc = await docs.find_one({"_id": "d"})
    assert doc["n"] == 3 and doc[REV] == 2
