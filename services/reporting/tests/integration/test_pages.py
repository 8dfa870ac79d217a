"""Entities many to a page on the real FerretDB: a live batch keeps every entity of the
pages it rewrites, a redelivered batch counts once, and a generation written before pages
existed keeps one document per entity."""

from __future__ import annotations

import pytest
from crm_runtime.mongo import create_client
from crm_runtime.testing import unique_suffix
from reporting.adapters.store import Generation
from reporting.domain.cells import ALL, month_cell
from reporting.handlers import apply_batch, counters

from ..unit.test_apply import T0, Log, case_event

pytestmark = pytest.mark.stack
CASES = "crm.cases.cases.v1"


def opened_cases(log: Log, first: int, count: int) -> None:
    for i in range(first, first + count):
        log.add(*case_event("opened", 1, T0, case_id=f"c{i}", channel="hotline"), subject=f"c{i}")


async def march_opened(gen: Generation) -> int:
    cell = month_cell("shenzhen", "2026-03")
    return (await counters(gen, cell, (CASES,), ALL)).get("cases:opened", 0)


async def test_a_live_batch_rewrites_whole_pages_and_counts_once(stack):
    mongo = create_client(stack.mongodb_url, app_name="reporting-tests")
    db = mongo[f"crm_reporting{unique_suffix()}"]
    try:
        gen = Generation(db, "g1")
        await gen.start_rollups()
        await gen.start_pages(buckets=2)  # 12 cases on 2 pages: every write rewrites a shared page
        log = Log(CASES, partition=3)
        opened_cases(log, 0, 12)
        await apply_batch(gen, log.records[:5])
        await apply_batch(Generation(db, "g1"), log.records[5:])  # another process, the same pages
        await apply_batch(Generation(db, "g1"), log.records[3:9])  # redelivered after a crash
        entities = await Generation(db, "g1").all_entities()
        assert sorted(entities) == sorted(f"{CASES}|c{i}" for i in range(12))
        assert await db["g1_pages"].count_documents({}) == 2
        assert await db["g1_entities"].count_documents({}) == 0
        assert await march_opened(Generation(db, "g1")) == 12
    finally:
        await mongo.close()


async def test_a_generation_written_before_pages_keeps_one_document_per_entity(stack):
    mongo = create_client(stack.mongodb_url, app_name="reporting-tests")
    db = mongo[f"crm_reporting{unique_suffix()}"]
    try:
        await db["g1_partitions"].insert_one({"_id": f"{CASES}|0"})  # written by an older version
        log = Log(CASES, partition=0)
        opened_cases(log, 0, 3)
        await apply_batch(Generation(db, "g1"), log.records[:2])
        await apply_batch(Generation(db, "g1"), log.records)  # the first two again, and one more
        assert await db["g1_entities"].count_documents({}) == 3
        assert await db["g1_pages"].count_documents({}) == 0
        assert len(await Generation(db, "g1").all_entities()) == 3
        assert await march_opened(Generation(db, "g1")) == 3
    finally:
        await mongo.close()
