"""Holiday care greetings on the real stack: on the last working day before the National
Day break every owner of the region who may get marketing is greeted, once, in their
language; nobody else is."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import pytest
from crm_runtime.testing import eventually, running_app
from notifications.handlers import holiday_greetings

from .conftest import TZ, FakeClock, customer, fresh_app, token, upsert

pytestmark = pytest.mark.stack


async def test_owners_are_greeted_before_national_day_in_their_language_except_who_opted_out(stack):
    clock = FakeClock(datetime(2026, 9, 30, 8, 30, tzinfo=TZ))  # Wednesday, the day before the break
    app, gateways = await fresh_app(stack, clock)
    project = f"p-{uuid.uuid4().hex[:6]}"
    zh = customer(units=[(project, "1", "101")])
    en = customer(units=[(project, "2", "202")], language="en")
    opted_out = customer(units=[(project, "1", "102")])
    not_an_owner = customer()
    elsewhere = customer(region="shanghai", units=[(f"{project}-sh", "1", "101")])
    async with running_app(app) as client:
        deps = app.state.ctx.app_deps
        for c in (zh, en, opted_out, not_an_owner):
            await upsert(stack, c)
        await upsert(stack, elsewhere, region="shanghai")
        for c in (zh, en, opted_out, not_an_owner, elsewhere):
            await eventually(lambda c=c: deps.directory.get(c["customer_id"]), timeout=30)
        owners = {zh["customer_id"], en["customer_id"], opted_out["customer_id"]}

        async def indexed():  # the owners' index documents are written just after the contacts
            return owners <= set(await deps.directory.owners(None, None, "shenzhen"))
        await eventually(indexed, timeout=30)
        await deps.optouts.record(opted_out["customer_id"], "sms", "sms_reply", {"reply": "TD"}, clock())

        assert await holiday_greetings(deps, "shenzhen", date(2026, 9, 30)) == 1
        assert await holiday_greetings(deps, "shenzhen", date(2026, 9, 30)) == 1  # the timer fired twice

        bid = "holiday:shenzhen:2026-10-01"

        async def finished():
            p = (await client.get(f"/v1/broadcasts/{bid}", headers=token())).json()
            return p if p.get("status") == "done" else None
        done = await eventually(finished, timeout=60)
        sms = gateways["sms"].sent
        assert sorted(m.to for m in sms) == sorted([zh["phones"][0], en["phones"][0]])
        assert "国庆节将至" in gateways["sms"].to(zh["phones"][0])[0].body
        assert "National Day is coming" in gateways["sms"].to(en["phones"][0])[0].body
        assert done["total"] == 3 and done["counts"] == {"sent": 2, "suppressed": 1}
        history = (await client.get(f"/v1/customers/{opted_out['customer_id']}/messages", headers=token())).json()
        [row] = [r for r in history["messages"] if r["template_id"] == "care.holiday"]
        assert row["status"] == "suppressed" and "opted out" in row["reason"]
