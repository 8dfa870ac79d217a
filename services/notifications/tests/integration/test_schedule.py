"""Time on the real stack, with the service's clock set by the test: the send window, the
next-day milestone broadcast to one building, and marketing held over a public holiday."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import pytest
from crm_contracts import topics
from crm_runtime.testing import eventually, make_event, produce, running_app
from notifications.adapters.ledger import message_id
from notifications.handlers import birthdays

from .conftest import TZ, FakeClock, case_data, case_event, customer, fresh_app, token, upsert

pytestmark = pytest.mark.stack


async def started(stack, at: datetime):
    clock = FakeClock(at)
    app, gateways = await fresh_app(stack, clock)
    return app, clock, gateways


async def absorbed(deps, stack, customers: list[dict]) -> None:
    for c in customers:
        await upsert(stack, c)
    for c in customers:
        await eventually(lambda c=c: deps.directory.get(c["customer_id"]), timeout=30)


async def test_a_message_due_at_23_is_sent_at_8_and_a_milestone_reaches_only_its_buildings_owners(stack):
    app, clock, gw = await started(stack, datetime(2026, 12, 1, 23, 0, tzinfo=TZ))
    project = f"p-{uuid.uuid4().hex[:6]}"
    b3 = [customer(units=[(project, "3", f"{n}01")]) for n in range(1, 6)]
    b5 = [customer(units=[(project, "5", f"{n}01")]) for n in range(1, 4)]
    elsewhere = customer(units=[(f"{project}-x", "3", "101")])
    no_consent = customer(units=[(project, "3", "901")], consent={"sms": False, "email": False, "letter": False})
    async with running_app(app) as client:
        deps = app.state.ctx.app_deps
        await absorbed(deps, stack, [*b3, *b5, elsewhere, no_consent])
        await eventually(lambda: _owners(deps, project, "3", 6), timeout=20)
        # 23:00 local: a progress report is held until the window opens.
        data = case_data(b3[0]["customer_id"])
        await case_event(stack, "progress-reported", {**data, "message_to_customer": "明天上门"})
        await produce(stack.bootstrap, topics.PARTNER_PROJECTS, make_event(
            "crm.partner.project.milestone-reached.v1", {
                "milestone_id": "m-1", "project": project, "project_name": "碧水湾", "building": "3",
                "milestone": "topped_out", "occurred_at": clock().isoformat()}, subject=project, id=f"ms-{project}"))
        rows = await eventually(lambda: _history(client, b3[0]["customer_id"], 2), timeout=30)
        assert {r["status"] for r in rows} == {"scheduled"}
        assert all(datetime.fromisoformat(r["due_at"]) == datetime(2026, 12, 2, 8, tzinfo=TZ) for r in rows), rows
        assert gw["sms"].sent == []
        bid = f"ms-{project}"
        # The broadcast's own document is written after its messages: wait for it too.
        async def broadcast_recorded():
            r = await client.get(f"/v1/broadcasts/{bid}", headers=token())
            return r.json() if r.status_code == 200 else None
        progress = await eventually(broadcast_recorded, timeout=20)
        assert progress["total"] == 6 and progress["accepted"] == 0
        clock.jump_to(datetime(2026, 12, 2, 7, 59, 50, tzinfo=TZ))
        await eventually(lambda: gw["sms"].sent, timeout=60)
        sent_at = clock()
        assert sent_at >= datetime(2026, 12, 2, 8, 0, tzinfo=TZ)
        await eventually(lambda: len(gw["sms"].sent) >= 6, timeout=60)
        phones = [m.to for m in gw["sms"].sent]
        assert len(phones) == len(set(phones)) + 1  # b3[0] got the progress report and the notice
        assert set(phones) == {c["phones"][0] for c in b3}
        notices = [m for m in gw["sms"].sent if m.template_code == "milestone.topped_out"]
        assert len(notices) == 5 and all("碧水湾3栋近日已封顶" in m.body for m in notices)
        assert gw["letter"].sent == []  # topping-out: SMS only

        async def finished():
            p = (await client.get(f"/v1/broadcasts/{bid}", headers=token())).json()
            return p if p["status"] == "done" else None
        done = await eventually(finished, timeout=30)
        assert done["accepted"] == 5 and done["counts"].get("suppressed") == 1


async def test_a_broadcast_message_cancelled_after_planning_is_not_sent(stack):
    # The sender works from the chunk's copy of its members as planned: a member changed
    # since (here cancelled by staff) must be found changed, not sent.
    app, clock, gw = await started(stack, datetime(2026, 12, 1, 20, 0, tzinfo=TZ))
    project = f"p-{uuid.uuid4().hex[:6]}"
    owners = [customer(units=[(project, "1", f"{n}01")]) for n in range(1, 4)]
    bid = f"ms-{project}"
    async with running_app(app) as client:
        deps = app.state.ctx.app_deps
        await absorbed(deps, stack, owners)
        await eventually(lambda: _owners(deps, project, None, 3), timeout=20)
        await produce(stack.bootstrap, topics.PARTNER_PROJECTS, make_event(
            "crm.partner.project.milestone-reached.v1", {
                "milestone_id": "m-3", "project": project, "project_name": "碧水湾", "milestone": "topped_out",
                "occurred_at": clock().isoformat()}, subject=project, id=bid))
        await eventually(lambda: deps.ledger.broadcast(bid), timeout=30)
        mid = message_id(bid, owners[0]["customer_id"], "sms")
        r = await client.post(f"/v1/messages/{mid}/cancel", headers=token())
        assert r.status_code == 200, r.text
        clock.jump_to(datetime(2026, 12, 2, 7, 59, 55, tzinfo=TZ))

        async def finished():
            p = (await client.get(f"/v1/broadcasts/{bid}", headers=token())).json()
            return p if p["status"] == "done" else None
        done = await eventually(finished, timeout=60)
        assert sorted(m.to for m in gw["sms"].sent) == sorted(c["phones"][0] for c in owners[1:])
        assert done["accepted"] == 2 and done["counts"].get("cancelled") == 1
        assert (await client.get(f"/v1/messages/{mid}", headers=token())).json()["status"] == "cancelled"


async def test_delivery_milestone_goes_by_letter_too(stack):
    app, clock, gw = await started(stack, datetime(2026, 12, 1, 20, 0, tzinfo=TZ))
    project = f"p-{uuid.uuid4().hex[:6]}"
    owners = [customer(units=[(project, "1", "101")]), customer(units=[(project, "2", "202")])]
    async with running_app(app):
        deps = app.state.ctx.app_deps
        await absorbed(deps, stack, owners)
        await eventually(lambda: _owners(deps, project, None, 2), timeout=20)
        await produce(stack.bootstrap, topics.PARTNER_PROJECTS, make_event(
            "crm.partner.project.milestone-reached.v1", {
                "milestone_id": "m-2", "project": project, "project_name": "碧水湾", "milestone": "delivery",
                "occurred_at": clock().isoformat()}, subject=project))
        await eventually(lambda: deps.ledger.broadcasts_for([(project, "1")]), timeout=30)
        clock.jump_to(datetime(2026, 12, 2, 7, 59, 55, tzinfo=TZ))
        await eventually(lambda: len(gw["sms"].sent) >= 2 and len(gw["letter"].sent) >= 2, timeout=60)
        assert sorted(m.postal_address for m in gw["letter"].sent) == [f"{project} 1栋 101", f"{project} 2栋 202"]
        assert all("即将交付" in m.body for m in gw["letter"].sent + gw["sms"].sent)


async def test_a_marketing_greeting_due_on_a_public_holiday_waits_for_the_next_working_day(stack):
    # Sunday 21 June 2026 is the last day of the Dragon Boat Festival holiday.
    app, clock, gw = await started(stack, datetime(2026, 6, 21, 19, 0, tzinfo=TZ))
    c = customer(birthday="1985-06-21")
    async with running_app(app):
        deps = app.state.ctx.app_deps
        await absorbed(deps, stack, [c])
        await eventually(lambda: _has(deps.directory.born_on(date(2026, 6, 21)), c["customer_id"]), timeout=20)
        await birthdays(deps, "shenzhen", date(2026, 6, 21))
        # A service message the same evening is not held back by the holiday.
        await case_event(stack, "opened", {**case_data(c["customer_id"]), "channel": "hotline"})
        await eventually(lambda: gw["sms"].sent, timeout=30)
        assert [m.template_code for m in gw["sms"].sent] == ["case.acknowledged"]
        greeting = await deps.ledger.get(message_id(f"birthday:{c['customer_id']}:2026-06-21", c["customer_id"], "sms"))
        assert greeting["status"] == "scheduled" and "public holiday" in greeting["reason"]
        assert greeting["due_at"].astimezone(TZ) == datetime(2026, 6, 22, 8, 0, tzinfo=TZ)
        clock.jump_to(datetime(2026, 6, 22, 7, 59, 55, tzinfo=TZ))
        await eventually(lambda: len(gw["sms"].sent) >= 2, timeout=90)
        assert gw["sms"].sent[1].template_code == "care.birthday" and clock() >= datetime(2026, 6, 22, 8, tzinfo=TZ)


async def _owners(deps, project, building, count):
    return len(await deps.directory.owners(project, building)) >= count


async def _has(ids_coro, wanted):
    return wanted in await ids_coro


async def _history(client, customer_id, count):
    r = await client.get(f"/v1/customers/{customer_id}/messages", headers=token())
    rows = r.json().get("messages", []) if r.status_code == 200 else []
    return rows if len(rows) >= count else None
