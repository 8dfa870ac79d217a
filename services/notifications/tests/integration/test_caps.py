"""The household daily cap on the real store: sends racing for a household's last slots
let exactly the cap through, and the rest wait for tomorrow's window."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import pytest
from crm_runtime.testing import eventually, make_event, running_app
from notifications.domain import triggers as t
from notifications.domain.gate import MessageClass
from notifications.handlers.dispatch import dispatch
from notifications.handlers.messages import plan_one

from .conftest import TZ, FakeClock, customer, fresh_app, upsert

pytestmark = pytest.mark.stack


def notice(customer_id: str, n: int) -> t.Intent:
    return t.Intent("milestone.topped_out", MessageClass.NOTICE, "shenzhen", t.Customer(customer_id), (("sms",),),
                    f"race-{uuid.uuid4().hex[:8]}-{n}", {"project_name": "碧水湾", "building": "3"})


async def test_concurrent_sends_to_one_household_stop_exactly_at_the_daily_cap(stack):
    clock = FakeClock(datetime(2026, 12, 1, 10, 0, tzinfo=TZ))  # a Tuesday morning
    app, gateways = await fresh_app(stack, clock, CRM_NOTIFICATIONS_HOUSEHOLD_DAILY_CAP=3)
    project = f"p-{uuid.uuid4().hex[:6]}"
    # Two co-owners of one home: one household, one cap of 3 between them.
    owners = [customer(units=[(project, "3", "1201")]) for _ in range(2)]
    async with running_app(app):
        deps = app.state.ctx.app_deps
        for c in owners:
            await upsert(stack, c)
        for c in owners:
            await eventually(lambda c=c: deps.directory.get(c["customer_id"]), timeout=30)
        mids: list[str] = []
        for n in range(8):
            cause = make_event("crm.partner.project.milestone-reached.v1", {}, subject=project)
            mids += await plan_one(deps, notice(owners[n % 2]["customer_id"], n), cause)
        assert len(mids) == 8  # each planned as due now: the count read at planning was 0

        results = await asyncio.gather(*(dispatch(deps, mid) for mid in mids))

        assert sorted(results) == ["scheduled"] * 5 + ["sent"] * 3
        assert len(gateways["sms"].sent) == 3
        for mid, status in zip(mids, results, strict=True):
            if status == "scheduled":
                doc = await deps.ledger.get(mid)
                assert "household daily cap reached" in doc["reason"]
                assert doc["due_at"].astimezone(TZ) == datetime(2026, 12, 2, 8, 0, tzinfo=TZ)


async def test_a_send_the_provider_refuses_gives_its_slot_back(stack):
    clock = FakeClock(datetime(2026, 12, 1, 10, 0, tzinfo=TZ))
    app, gateways = await fresh_app(stack, clock, CRM_NOTIFICATIONS_HOUSEHOLD_DAILY_CAP=1)
    c = customer(units=[(f"p-{uuid.uuid4().hex[:6]}", "1", "101")])
    async with running_app(app):
        deps = app.state.ctx.app_deps
        await upsert(stack, c)
        await eventually(lambda: deps.directory.get(c["customer_id"]), timeout=30)
        cause = make_event("crm.partner.project.milestone-reached.v1", {}, subject="p")
        refused, second = [(await plan_one(deps, notice(c["customer_id"], n), cause))[0] for n in range(2)]
        gateways["sms"].mode[c["phones"][0]] = "permanent"
        assert await dispatch(deps, refused) == "failed"
        gateways["sms"].mode.clear()
        # The only slot of the day was given back: the next message goes today.
        assert await dispatch(deps, second) == "sent"
        assert [m.message_id for m in gateways["sms"].sent] == [second]
