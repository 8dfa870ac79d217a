"""Revision claims against the real MongoDB-protocol server: a late writer is refused, and
claims do not pile up forever (a day later the store expires them, or the service prunes)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from crm_runtime.revisions import (
    CLAIMS,
    RevisionConflict,
    expire_claims,
    keep_claims_bounded,
    prune_claims,
    write_revision,
)
from crm_runtime.testing import eventually

pytestmark = pytest.mark.stack




async def _claim_ids(db) -> set[str]:
    return {d["_id"] async for d in db[CLAIMS].find()}


async def test_pruning_removes_day_old_claims_and_a_late_writer_is_still_refused(db):
    cases = db["cases"]
    await cases.insert_one({"_id": "SZ-1", "rev": 0, "status": "new"})
    await write_revision(cases, "SZ-1", 0, {"$set": {"status": "assessed"}})
    await db[CLAIMS].insert_one({"_id": "cases/SZ-0@4", "at": datetime.now(UTC) - timedelta(days=2)})

    assert await prune_claims(db) == 1
    assert await _claim_ids(db) == {"cases/SZ-1@1"}
    # A writer that read revision 0 before the agent's step cannot undo it.
    with pytest.raises(RevisionConflict):
        await write_revision(cases, "SZ-1", 0, {"$set": {"status": "new"}})
    assert (await cases.find_one({"_id": "SZ-1"}))["status"] == "assessed"
    # A day on, that claim goes too.
    assert await prune_claims(db, now=datetime.now(UTC) + timedelta(days=1, minutes=1)) == 1
    assert await _claim_ids(db) == set()


async def test_a_service_keeps_its_claims_bounded_on_any_store(db):
    await db[CLAIMS].insert_one({"_id": "cases/SZ-0@1", "at": datetime.now(UTC) - timedelta(days=2)})
    await db[CLAIMS].insert_one({"_id": "cases/SZ-0@2", "at": datetime.now(UTC)})
    task = asyncio.create_task(keep_claims_bounded(db, every_s=0.2))
    try:
        if await expire_claims(db):  # MongoDB: a TTL index, whose monitor runs every minute
            indexes = {i["name"]: i async for i in await db[CLAIMS].list_indexes()}
            assert indexes["expire_claims"]["expireAfterSeconds"] == 86400
        else:  # FerretDB 1.x: the service prunes
            await eventually(lambda: _only_recent(db), timeout=10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _only_recent(db) -> bool:
    return await _claim_ids(db) == {"cases/SZ-0@2"}
