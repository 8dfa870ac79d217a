"""The staff queue read against the real store: paging through a region pair with a
narrow filter (many buckets read in waves) returns every matching open case once, in due
order across both regions, and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cases.adapters.queue import QueueIndex
from crm_runtime.mongo import create_client
from crm_runtime.testing import unique_suffix

pytestmark = pytest.mark.stack


def case(i: int, region: str, status: str, due: datetime) -> dict:
    return {"_id": f"q-{i:03d}", "case_number": f"QP-{i:03d}", "region": region, "status": status,
            "severity": "general", "is_open": True, "sla_due_at": due}


async def test_a_filtered_queue_pages_through_every_bucket_in_due_order_across_regions(stack):
    client = create_client(stack.mongodb_url, app_name="test")
    db = client[f"crm_cases{unique_suffix()}"]
    index = QueueIndex(db)
    start = datetime(2026, 12, 1, 8, tzinfo=UTC)
    wanted: list[tuple[datetime, str]] = []
    try:
        # 120 cases over 60 hours in two regions, each hour holding a case of each; half of
        # them "handling", and in each hour Beijing's is due after Shenzhen's.
        for i in range(120):
            region = ("shenzhen", "beijing")[i % 2]
            status = "handling" if i % 4 in (0, 1) else "received"
            due = start + timedelta(hours=i // 2, minutes=(37 * i) % 60)
            doc = case(i, region, status, due)
            doc["case_id"] = doc["_id"]
            await index.place(doc, None, 1)
            if status == "handling":
                wanted.append((due, doc["_id"]))

        seen: list[tuple[datetime, str]] = []
        after = None
        for _ in range(20):
            page = await index.page({"status": "handling"}, regions=["beijing", "shenzhen"], due_before=None,
                                    after=after, limit=6)
            seen += [(r["sla_due_at"], r["case_id"]) for r in page]
            if len(page) < 6:
                break
            after = seen[-1]
        assert seen == sorted(wanted)
        assert len(seen) == 60

        due_before = start + timedelta(hours=10)
        early = await index.page({"status": "handling"}, regions=["beijing", "shenzhen"], due_before=due_before,
                                 after=None, limit=50)
        assert [r["case_id"] for r in early] == [cid for due, cid in sorted(wanted) if due <= due_before]
    finally:
        await client.drop_database(db.name)
        await client.close()


async def test_a_past_hour_whose_cases_all_closed_is_read_once_then_no_more(stack):
    client = create_client(stack.mongodb_url, app_name="test")
    db = client[f"crm_cases{unique_suffix()}"]
    index = QueueIndex(db)
    overdue = datetime.now(UTC) - timedelta(days=2)
    try:
        doc = {**case(1, "tianjin", "handling", overdue), "case_id": "q-001"}
        here = await index.place(doc, None, 1)
        assert here is not None
        later = {**case(2, "tianjin", "received", overdue + timedelta(hours=30)), "case_id": "q-002"}
        await index.place(later, None, 1)
        await index.place({**doc, "is_open": False}, here, 2)  # closed: its bucket is empty now
        assert len(await index.hours("tianjin")) == 2

        page = await index.page({}, regions=["tianjin"], due_before=None, after=None, limit=50)
        assert [r["case_id"] for r in page] == ["q-002"]
        assert await index.hours("tianjin") == [here[1] + 30]

        # A case due in that hour again lists the hour again.
        again = {**case(3, "tianjin", "received", overdue), "case_id": "q-003"}
        await index.place(again, None, 1)
        page = await index.page({}, regions=["tianjin"], due_before=None, after=None, limit=50)
        assert [r["case_id"] for r in page] == ["q-003", "q-002"]
    finally:
        await client.drop_database(db.name)
        await client.close()


async def test_one_busy_hour_pages_in_due_order_and_drops_closed_and_moved_cases(stack):
    client = create_client(stack.mongodb_url, app_name="test")
    db = client[f"crm_cases{unique_suffix()}"]
    index = QueueIndex(db)
    start = datetime(2026, 12, 3, 9, tzinfo=UTC)
    try:
        # A storm: 40 cases of one region due within one hour, paged 7 at a time by cursor.
        docs = [{**case(i, "chengdu", "received", start + timedelta(seconds=(53 * i) % 3600)), "case_id": f"q-{i:03d}"}
                for i in range(40)]
        where = {}
        for doc in docs:
            where[doc["_id"]] = await index.place(doc, None, 1)

        closed, moved = docs[3], docs[17]
        await index.place({**closed, "is_open": False}, where[closed["_id"]], 2)
        await index.place({**moved, "sla_due_at": start + timedelta(hours=5)}, where[moved["_id"]], 2)
        await index.place(moved, None, 1)  # a late older save of the moved case changes nothing

        seen: list[str] = []
        after = None
        for _ in range(10):
            page = await index.page({}, regions=["chengdu"], due_before=None, after=after, limit=7)
            seen += [r["case_id"] for r in page]
            if len(page) < 7:
                break
            after = (page[-1]["sla_due_at"], page[-1]["case_id"])
        staying = sorted((d for d in docs if d is not closed and d is not moved),
                         key=lambda d: (d["sla_due_at"], d["_id"]))
        assert seen == [d["_id"] for d in staying] + [moved["_id"]]
    finally:
        await client.drop_database(db.name)
        await client.close()
