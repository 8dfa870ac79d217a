"""The contacts work list against the real store: pages in order with a cursor across
days, a moved row leaves its old list, a day whose contacts are all answered stops being
read, and a contact placed while that day is being unlisted is never lost."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cases.adapters.worklist import WORKLIST, ContactWorklist, sort_key
from crm_runtime.mongo import create_client

pytestmark = pytest.mark.stack
DAY0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


@pytest.fixture
async def db(stack):
    client = create_client(stack.mongodb_url, app_name="test")
    name = f"worklist_{uuid.uuid4().hex[:8]}"
    yield client[name]
    await client.drop_database(name)
    await client.close()


def row(n: int, *, day: int = 0, status: str = "unanswered", region: str = "shenzhen", kind="consultation"):
    return {"contact_id": f"ct-{n:03d}", "region": region, "status": status, "kind": kind,
            "received_at": DAY0 + timedelta(days=day, minutes=n), "subject": f"问题 {n}"}


async def all_pages(worklist, limit: int, **query) -> list[dict]:
    out, after = [], None
    while True:
        page = await worklist.page(after=after, limit=limit, **query)
        out += page
        if len(page) < limit:
            return out
        after = sort_key(page[-1])


async def test_pages_list_unanswered_oldest_first_then_answered_newest_first(db):
    worklist = ContactWorklist(db)
    for n in range(6):
        await worklist.place(row(n, day=n % 3))
    for n in (6, 7):
        await worklist.place(row(n, day=n % 3, status="answered"))
    await worklist.place(row(8, region="wuhan"))
    query = {"regions": ["shenzhen"], "statuses": ["unanswered", "answered", "case_opened"], "kind": None}
    items = await all_pages(worklist, 3, **query)
    ids = [i["contact_id"] for i in items]
    unanswered = sorted((row(n, day=n % 3) for n in range(6)), key=lambda r: r["received_at"])
    assert ids[:6] == [r["contact_id"] for r in unanswered]
    assert ids[6:] == ["ct-007", "ct-006"]  # answered: newest first
    assert len(set(ids)) == len(ids) == 8  # nothing twice, nothing of another region


async def test_a_moved_row_leaves_its_old_list_and_a_day_all_answered_is_no_longer_read(db):
    worklist = ContactWorklist(db)
    for n in range(3):
        await worklist.place(row(n))
    for n in range(3):
        await worklist.place(row(n, status="answered"), ("unanswered",))
    query = {"regions": ["shenzhen"], "kind": None, "after": None, "limit": 10}
    assert await worklist.page(statuses=["unanswered"], **query) == []
    assert len(await worklist.page(statuses=["answered"], **query)) == 3
    days = await db[WORKLIST].find_one({"_id": "days:shenzhen|unanswered"})
    assert days["days"] == []  # pruned by the read that found the day empty
    await worklist.place(row(9))  # a late contact of the same day lists it again
    assert [i["contact_id"] for i in await worklist.page(statuses=["unanswered"], **query)] == ["ct-009"]


async def test_a_contact_placed_while_its_day_is_unlisted_is_never_lost(db):
    worklist = ContactWorklist(db)
    query = {"regions": ["shenzhen"], "statuses": ["unanswered"], "kind": None, "after": None, "limit": 100}
    for attempt in range(5):
        first = row(100 + attempt * 2)
        await worklist.place(first)
        await worklist.place({**first, "status": "answered"}, ("unanswered",))
        late = row(101 + attempt * 2)
        # A page finding the day empty prunes it while the late contact is being placed.
        await asyncio.gather(worklist.page(**query), worklist.place(late))
        listed = {i["contact_id"] for i in await worklist.page(**query)}
        assert late["contact_id"] in listed, attempt
        await worklist.place({**late, "status": "answered"}, ("unanswered",))
