"""Each exclusion on the real stack, published as survey.excluded with its reason: no
consent; the 3-month visit after a major complaint, while renovating, before moving in
(also found at the check before the notice, with the clock moved); the quiet period for
the customer and for the household; and a survey held while a complaint is open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from crm_contracts import topics
from crm_runtime.testing import eventually
from surveys.domain.schedule import add_months

from .conftest import customer, customer_surveys, iso, known, send, survey_events, uid

pytestmark = pytest.mark.stack


async def case(stack, surveys, suffix: str, case_id: str, cust: str, sequence: int, **extra) -> None:
    status = {"opened": "received", "closed": "closed", "classified": "classified"}[suffix]
    data = {"case_id": case_id, "case_number": "SZ-2026-000777", "region": "shenzhen", "customer_id": cust,
            "status": status, "sequence": sequence, "occurred_at": iso(datetime.now(UTC)), **extra}
    if suffix == "opened":
        data["channel"] = "hotline"
    await send(stack, topics.CASES_CASES, f"crm.cases.case.{suffix}.v1", data, subject=case_id)

    async def stored():
        doc = await surveys.app.state.ctx.db["known_cases"].find_one({"_id": case_id})
        return doc and doc.get("sequence") == sequence

    await eventually(stored, timeout=30)


async def deliver(stack, cust: str, project: str, unit: str, delivered_at: datetime) -> None:
    await send(stack, topics.PARTNER_UNITS, "crm.partner.unit.delivered.v1", {
        "customer_id": cust, "project": project, "building": "1", "unit": unit,
        "delivered_at": iso(delivered_at), "fit_out": "bare"})


async def occupancy(stack, surveys, cust: str, project: str, unit: str, state: str) -> None:
    await send(stack, topics.PARTNER_UNITS, "crm.partner.unit.occupancy-changed.v1", {
        "customer_id": cust, "project": project, "building": "1", "unit": unit, "occupancy": state,
        "changed_at": iso(datetime.now(UTC))})

    async def stored():
        doc = await surveys.app.state.ctx.db["homes"].find_one({"_id": f"{project}|1|{unit}"})
        return doc and doc.get("occupancy") == state

    await eventually(stored, timeout=30)


async def excluded_reason(stack, survey_id: str) -> str:
    [event] = await survey_events(stack, "excluded.v1", survey_id=survey_id)
    return event.json()["data"]["reason"]  # type: ignore[no-any-return]


async def living_visit(surveys, cust: str) -> dict:
    visits = await customer_surveys(surveys, cust, count=2)
    return next(v for v in visits if v["kind"] == "living_3_months")


async def test_no_consent_no_survey(stack, surveys):
    cust = await customer(stack, consent=False)
    await known(surveys, cust)
    await send(stack, topics.CASES_CASES, "crm.cases.case.closed.v1", {
        "case_id": uid("case"), "case_number": "SZ-2026-000778", "region": "shenzhen", "customer_id": cust,
        "status": "closed", "sequence": 5, "occurred_at": iso(datetime.now(UTC)), "outcome": "resolved"})
    [visit] = await customer_surveys(surveys, cust)
    assert visit["status"] == "excluded"
    assert await excluded_reason(stack, visit["survey_id"]) == "no_consent"


async def test_the_3_month_visit_skips_a_customer_with_a_major_complaint(stack, surveys):
    project = uid("p")
    cust = await customer(stack, units=[(project, "1", "101")])
    await known(surveys, cust)
    case_id = uid("case")
    await case(stack, surveys, "opened", case_id, cust, 1)
    await case(stack, surveys, "classified", case_id, cust, 2, severity="major", category="engineering_quality")
    await case(stack, surveys, "closed", case_id, cust, 3, outcome="resolved")
    await deliver(stack, cust, project, "101", datetime.now(UTC) - timedelta(days=30))
    visit = await living_visit(surveys, cust)
    assert await excluded_reason(stack, visit["survey_id"]) == "major_complaint"


async def test_the_3_month_visit_skips_a_home_being_renovated(stack, surveys):
    project = uid("p")
    cust = await customer(stack, units=[(project, "1", "102")])
    await known(surveys, cust)
    await occupancy(stack, surveys, cust, project, "102", "renovating")
    await deliver(stack, cust, project, "102", datetime.now(UTC) - timedelta(days=30))
    visit = await living_visit(surveys, cust)
    assert await excluded_reason(stack, visit["survey_id"]) == "renovating"


async def test_not_moved_in_is_found_at_the_check_before_the_notice_with_the_clock_moved(stack, surveys, clock):
    project = uid("p")
    cust = await customer(stack, units=[(project, "1", "103")])
    await known(surveys, cust)
    # The 3-month visit due so that its check (a day before the week's notice) is ten minutes
    # away: time enough to deliver and store the occupancy on a loaded machine. Three months
    # back and forth is not the same day near a month's end (31 Dec -> 30 Sep -> 30 Dec): on
    # those days the clock moves on to the next due date that is, and back afterwards.
    target = clock() + timedelta(days=8, minutes=10)
    skip = timedelta()
    while add_months(add_months(target + skip, -3), 3) != target + skip:
        skip += timedelta(days=1)
    clock.move(skip)
    try:
        await deliver(stack, cust, project, "103", add_months(target + skip, -3))
        visit = await living_visit(surveys, cust)
        assert visit["status"] == "scheduled"
        await occupancy(stack, surveys, cust, project, "103", "not_moved_in")
        clock.move(timedelta(minutes=12))
        assert await excluded_reason(stack, visit["survey_id"]) == "not_moved_in"
    finally:
        clock.move(-skip)


async def test_nobody_nor_their_household_is_surveyed_twice_within_the_quiet_period(stack, surveys):
    project = uid("p")
    cust = await customer(stack, units=[(project, "2", "201")])
    spouse = await customer(stack, units=[(project, "2", "201")])
    for c in (cust, spouse):
        await known(surveys, c)
    now = datetime.now(UTC)
    await send(stack, topics.PARTNER_SALES, "crm.partner.sales.contract-signed.v1", {
        "contract_id": uid("k"), "customer_id": cust, "project": project, "building": "2", "unit": "201",
        "signed_at": iso(now)})
    [sales] = await customer_surveys(surveys, cust)
    assert sales["status"] == "scheduled"
    await send(stack, topics.PARTNER_REPAIRS, "crm.partner.repair.work-order-completed.v1", {
        "work_order_id": uid("wo"), "customer_id": cust, "project": uid("elsewhere"), "building": "9",
        "unit": "909", "category": "wall", "completed_at": iso(now + timedelta(days=2))})
    repair = next(s for s in await customer_surveys(surveys, cust, count=2) if s["kind"] == "repair_return_visit")
    assert await excluded_reason(stack, repair["survey_id"]) == "already_surveyed"
    await send(stack, topics.PARTNER_REPAIRS, "crm.partner.repair.work-order-completed.v1", {
        "work_order_id": uid("wo"), "customer_id": spouse, "project": project, "building": "2", "unit": "201",
        "category": "leak", "completed_at": iso(now + timedelta(days=3))})
    [household] = await customer_surveys(surveys, spouse)
    assert await excluded_reason(stack, household["survey_id"]) == "already_surveyed"


async def test_a_survey_waits_for_an_open_complaint_to_close(stack, surveys, clock):
    project = uid("p")
    cust = await customer(stack, units=[(project, "3", "301")])
    await known(surveys, cust)
    case_id = uid("case")
    await case(stack, surveys, "opened", case_id, cust, 1)
    await send(stack, topics.PARTNER_SALES, "crm.partner.sales.contract-signed.v1", {
        "contract_id": uid("k"), "customer_id": cust, "project": project, "building": "3", "unit": "301",
        "signed_at": iso(datetime.now(UTC))})
    [held] = await customer_surveys(surveys, cust)
    assert held["kind"] == "sales_return_visit" and held["status"] == "deferred"
    await case(stack, surveys, "closed", case_id, cust, 2, outcome="resolved")
    [scheduled] = await survey_events(stack, "scheduled.v1", survey_id=held["survey_id"])
    due = datetime.fromisoformat(scheduled.json()["data"]["due_at"])
    assert due >= clock() + timedelta(days=3 + 7) - timedelta(minutes=5)
    kinds = {s["kind"]: s["status"] for s in await customer_surveys(surveys, cust, count=2)}
    assert kinds == {"sales_return_visit": "scheduled", "case_return_visit": "scheduled"}
