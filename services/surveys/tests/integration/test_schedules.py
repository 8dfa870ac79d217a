"""Each schedule from its event on the real stack: the case return visit, the repair and
sales visits, the 3-month and 1-year visits with their notice, the annual campaign, and a
redelivered event scheduling one survey."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from crm_contracts import topics
from crm_runtime.testing import eventually

from .conftest import customer, customer_surveys, iso, known, send, survey_events, token, uid

pytestmark = pytest.mark.stack


def case_event(suffix: str, case_id: str, customer_id: str, sequence: int, at: datetime, **extra) -> tuple:
    status = {"opened": "received", "closed": "closed", "classified": "classified"}.get(suffix, "handling")
    data = {"case_id": case_id, "case_number": "SZ-2026-000123", "region": "shenzhen", "customer_id": customer_id,
            "status": status, "sequence": sequence, "occurred_at": iso(at), **extra}
    return f"crm.cases.case.{suffix}.v1", data


async def close_case(stack, case_id: str, customer_id: str, at: datetime, *, event_id=None, sequence=9):
    type_, data = case_event("closed", case_id, customer_id, sequence, at, outcome="resolved")
    return await send(stack, topics.CASES_CASES, type_, data, subject=case_id, id=event_id)


async def test_a_closed_case_gets_its_return_visit_within_7_days_once_even_when_redelivered(stack, surveys):
    cust = await customer(stack)
    await known(surveys, cust)
    case_id = uid("case")
    closed_at = datetime.now(UTC).replace(microsecond=0)
    first = await close_case(stack, case_id, cust, closed_at)
    await close_case(stack, case_id, cust, closed_at, event_id=first.id)  # the same event again
    [survey] = await customer_surveys(surveys, cust)
    assert survey["kind"] == "case_return_visit" and survey["case_id"] == case_id
    assert datetime.fromisoformat(survey["due_at"]) == closed_at + timedelta(days=7)
    [scheduled] = await survey_events(stack, "scheduled.v1", survey_id=survey["survey_id"])
    assert scheduled.json()["data"]["answer_path"].startswith("/s/")

    async def on_the_worklist() -> bool:  # its row is written apart from the event the relay sends
        r = await surveys.get("/v1/worklist", params={"region": "shenzhen", "limit": 200}, headers=token())
        return survey["survey_id"] in [i["survey_id"] for i in r.json()["items"]]
    await eventually(on_the_worklist, timeout=20)
    await asyncio.sleep(1.0)  # the redelivered event, right behind the first, had time to be handled
    assert len(await customer_surveys(surveys, cust)) == 1
    assert len(await survey_events(stack, "scheduled.v1", survey_id=survey["survey_id"])) == 1


async def test_repair_and_sales_visits_fall_due_within_a_week(stack, surveys):
    cust = await customer(stack, units=[("碧水湾", "3", "1201")])
    await known(surveys, cust)
    signed_at = datetime.now(UTC).replace(microsecond=0)
    await send(stack, topics.PARTNER_SALES, "crm.partner.sales.contract-signed.v1", {
        "contract_id": uid("k"), "customer_id": cust, "project": "碧水湾", "building": "3", "unit": "1201",
        "signed_at": iso(signed_at)})
    [sales] = await customer_surveys(surveys, cust)
    assert sales["kind"] == "sales_return_visit" and sales["status"] == "scheduled"
    assert datetime.fromisoformat(sales["due_at"]) == signed_at + timedelta(days=7)
    other = await customer(stack, units=[("碧水湾", "5", "0802")])
    await known(surveys, other)
    await send(stack, topics.PARTNER_REPAIRS, "crm.partner.repair.work-order-completed.v1", {
        "work_order_id": uid("wo"), "customer_id": other, "project": "碧水湾", "building": "5", "unit": "0802",
        "category": "leak", "completed_at": iso(signed_at)})
    [repair] = await customer_surveys(surveys, other)
    assert repair["kind"] == "repair_return_visit" and repair["work_order_id"].startswith("wo-")
    assert datetime.fromisoformat(repair["due_at"]) == signed_at + timedelta(days=7)


async def test_delivery_schedules_the_3_month_and_1_year_visits_with_a_notice_a_week_before(stack, surveys):
    project = uid("项目")
    cust = await customer(stack, units=[(project, "1", "101")])
    await known(surveys, cust)
    delivered = datetime(2026, 11, 20, 10, tzinfo=UTC)
    await send(stack, topics.PARTNER_UNITS, "crm.partner.unit.delivered.v1", {
        "customer_id": cust, "project": project, "building": "1", "unit": "101", "delivered_at": iso(delivered),
        "fit_out": "finished"})
    visits = {s["kind"]: s for s in await customer_surveys(surveys, cust, count=2)}
    living, inspection = visits["living_3_months"], visits["inspection_1_year"]
    assert datetime.fromisoformat(living["due_at"]) == datetime(2027, 2, 20, 10, tzinfo=UTC)
    assert datetime.fromisoformat(inspection["due_at"]) == datetime(2027, 11, 20, 10, tzinfo=UTC)
    for visit in (living, inspection):
        [event] = await survey_events(stack, "scheduled.v1", survey_id=visit["survey_id"])
        notice = datetime.fromisoformat(event.json()["data"]["notice_at"])
        assert notice == datetime.fromisoformat(visit["due_at"]) - timedelta(days=7)
        assert event.json()["data"]["product_type"] == "finished"


async def test_the_annual_campaign_surveys_the_regions_owners_once_per_household(stack, surveys):
    region = "wuhan"
    project = uid("年度")
    owners = [await customer(stack, region=region, units=[(project, "1", f"{n:02d}01")]) for n in range(3)]
    co_owner = await customer(stack, region=region, units=[(project, "1", "0001")])
    silent = await customer(stack, region=region, consent=False, units=[(project, "2", "0101")])
    not_owner = await customer(stack, region=region)
    for c in (*owners, co_owner, silent, not_owner):
        await known(surveys, c)
    headers = token(roles=["supervisor"], regions=[region])
    year = 2000 + int(uid("x")[-2:], 16) % 90  # a year of its own: campaigns are per region and year
    r = await surveys.post("/v1/campaigns", json={"region": region, "year": year}, headers=headers)
    assert r.status_code == 202, r.text
    cid = r.json()["campaign_id"]

    async def done():
        c = await surveys.get(f"/v1/campaigns/{cid}", headers=headers)
        return c.json() if c.json()["status"] == "scheduled" else None

    campaign = await eventually(done, timeout=60)
    assert campaign["counts"]["scheduled"] >= 3
    events = await survey_events(stack, "scheduled.v1", count=3, campaign_id=cid)
    surveyed = {e.json()["data"]["customer_id"] for e in events}
    assert set(owners[1:]) <= surveyed and not_owner not in surveyed and silent not in surveyed
    [no_consent] = await survey_events(stack, "excluded.v1", campaign_id=cid, customer_id=silent)
    assert no_consent.json()["data"]["reason"] == "no_consent"
    # The two owners of one home: whichever is read first is surveyed, the other is not.
    [twice] = await survey_events(stack, "excluded.v1", campaign_id=cid, reason="already_surveyed")
    assert {twice.json()["data"]["customer_id"]} | (surveyed & {owners[0], co_owner}) == {owners[0], co_owner}
    again = await surveys.post("/v1/campaigns", json={"region": region, "year": year}, headers=headers)
    assert again.json()["campaign_id"] == cid
