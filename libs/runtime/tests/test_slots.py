"""Slot indexes (timers due in a minute, cases due in an hour) under concurrent writers."""

from __future__ import annotations

import asyncio

import pytest
from crm_runtime.slots import SlotIndex

pytestmark = pytest.mark.stack


async def test_writers_racing_into_a_new_bucket_all_land_each_once(db):
    # Many first writers of one bucket at once: the counter does not exist yet, so several
    # upsert it together; every add must still succeed and every value be listed once.
    index = SlotIndex(db["slots"])
    for round_ in range(20):
        bucket = f"2026-12-02T02:{round_:02d}"
        firsts = await asyncio.gather(*(index.add(bucket, f"v{i}") for i in range(48)))
        members = await index.members(bucket)
        assert sorted(members) == sorted(f"v{i}" for i in range(48))
        assert sum(firsts) == 1  # exactly one writer was the bucket's first
