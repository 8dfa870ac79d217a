"""Crash repair of the visit worklist, and the quiet period under concurrency, on the real
stack: the service's own stores, with its use cases called the way its handlers call them
(a crash is a write whose follow-up never ran; a race is two schedules run at once)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from crm_runtime.testing import eventually
from surveys.bootstrap import build_deps
from surveys.domain import schedule
from surveys.handlers import lifecycle

from .conftest import surveys_settings, token, uid

pytestmark = pytest.mark.stack

REGION = "hangzhou"  # a region no other test of the module lists visits in


@pytest.fixture(scope="module")
def deps(surveys, stack):
    ctx = surveys.app.state.ctx
    return build_deps(ctx, surveys_settings(stack, "-unused"))


async def listed(surveys) -> set[str]:
    r = await surveys.get("/v1/worklist", params={"region": REGION, "limit": 200}, headers=token(regions=[REGION]))
    assert r.status_code == 200, r.text
    return {row["survey_id"] for row in r.json()["items"]}


async def outbox_empty(deps, survey_id: str) -> bool:
    doc = await deps.surveys.collection.find_one({"_id": survey_id}, {"outbox": 1})
    return not doc["outbox"]


async def known_customer(deps, customer_id: str, *homes: str) -> None:
    units = [{"key": h, "project": h.split("|")[0], "building": h.split("|")[1], "unit": h.split("|")[2]}
             for h in homes]
    await deps.directory.upsert_customers([{"customer_id": customer_id, "region": REGION, "consent": True,
                                            "units": units, "as_of": datetime.now(UTC)}])


def repair_visit(deps, customer_id: str, home: str) -> schedule.Planned:
    project, building, unit = home.split("|")
    return schedule.repair_return_visit(deps.policy, region=REGION, work_order_id=uid("wo"),
                                        customer_id=customer_id, completed_at=datetime.now(UTC),
                                        project=project, building=building, unit=unit)


async def test_a_visit_stored_but_not_listed_is_listed_by_the_repair(surveys, deps):
    cust, home = uid("cust"), f"{uid('p')}|1|101"
    await known_customer(deps, cust, home)
    planned = repair_visit(deps, cust, home)
    # What `schedule` does up to its crash: the note, then the survey with its event; no row.
    await deps.worklist.note(planned.survey_id, 0, None, deps.now())
    assert await deps.surveys.insert(lifecycle.document(planned, deps.now()), [])
    assert planned.survey_id not in await listed(surveys)

    assert await lifecycle.repair_worklist(deps, older_than_s=0) >= 1
    assert planned.survey_id in await listed(surveys)
    assert await deps.worklist.repairs.find_one({"_id": f"{planned.survey_id}@0"}) is None  # repaired once


async def test_an_answered_visit_left_on_the_worklist_is_taken_off_by_the_repair(surveys, deps):
    cust, home = uid("cust"), f"{uid('p')}|1|102"
    await known_customer(deps, cust, home)
    planned = repair_visit(deps, cust, home)
    await lifecycle.schedule(deps, planned)
    assert planned.survey_id in await listed(surveys)
    # The answer is written, then the writer dies before the worklist hears of it.
    await eventually(lambda: outbox_empty(deps, planned.survey_id), timeout=30)  # the relay is done with it
    doc = await deps.surveys.get(planned.survey_id)
    await deps.worklist.note(planned.survey_id, int(doc["rev"]) + 1, doc, deps.now())
    await deps.surveys.update(doc, {"status": "completed"}, [])
    assert planned.survey_id in await listed(surveys)  # a stale row

    await lifecycle.repair_worklist(deps, older_than_s=0)
    assert planned.survey_id not in await listed(surveys)


async def test_a_write_in_progress_is_not_repaired_yet(surveys, deps):
    cust, home = uid("cust"), f"{uid('p')}|1|103"
    await known_customer(deps, cust, home)
    planned = repair_visit(deps, cust, home)
    await deps.worklist.note(planned.survey_id, 0, None, deps.now())
    assert await deps.surveys.insert(lifecycle.document(planned, deps.now()), [])
    await lifecycle.repair_worklist(deps, older_than_s=3600)
    assert planned.survey_id not in await listed(surveys)  # its writer may still be at work
    await lifecycle.repair_worklist(deps, older_than_s=0)


async def test_two_surveys_of_one_household_scheduled_at_once_one_is_excluded(deps):
    """Co-owners of one home: a repair visit for one and a sales visit for the other, due
    the same week and handled concurrently. The quiet period lets exactly one through."""
    for _ in range(4):  # a few households: each a fresh race
        home = f"{uid('p')}|2|201"
        owner, co_owner = uid("cust"), uid("cust")
        await known_customer(deps, owner, home)
        await known_customer(deps, co_owner, home)
        project, building, unit = home.split("|")
        repair = repair_visit(deps, owner, home)
        sale = schedule.sales_return_visit(deps.policy, region=REGION, contract_id=uid("ct"), customer_id=co_owner,
                                           signed_at=datetime.now(UTC), project=project, building=building,
                                           unit=unit)
        docs = await asyncio.gather(lifecycle.schedule(deps, repair), lifecycle.schedule(deps, sale))
        assert sorted(d["status"] for d in docs) == ["excluded", "scheduled"], [d["status"] for d in docs]
        loser = next(d for d in docs if d["status"] == "excluded")
        winner = next(d for d in docs if d["status"] == "scheduled")
        assert loser["exclusion"]["reason"] == "already_surveyed"
        assert winner["_id"] in loser["exclusion"]["detail"]


async def test_two_surveys_of_one_customer_scheduled_at_once_one_is_excluded(deps):
    """One owner of two homes: two repair visits, one per home, handled concurrently."""
    for _ in range(4):
        first, second, cust = f"{uid('p')}|3|301", f"{uid('p')}|3|302", uid("cust")
        await known_customer(deps, cust, first, second)
        docs = await asyncio.gather(lifecycle.schedule(deps, repair_visit(deps, cust, first)),
                                    lifecycle.schedule(deps, repair_visit(deps, cust, second)))
        assert sorted(d["status"] for d in docs) == ["excluded", "scheduled"], [d["status"] for d in docs]


async def test_an_excluded_survey_frees_the_household_for_the_next(deps):
    home, cust = f"{uid('p')}|4|401", uid("cust")
    await known_customer(deps, cust, home)
    first = await lifecycle.schedule(deps, repair_visit(deps, cust, home))
    assert first["status"] == "scheduled"
    await lifecycle.mutate(deps, first["_id"], lambda d: ({"status": "cancelled"}, []))
    second = await lifecycle.schedule(deps, repair_visit(deps, cust, home))
    assert second["status"] == "scheduled"


async def test_the_annual_campaign_and_the_other_surveys_keep_one_quiet_period(deps):
    """An owner visited this week gets no annual survey; an owner the campaign surveys gets
    no repair visit in the weeks after it."""
    from surveys.handlers import campaign

    region = "wuhan"  # no other test of the module has customers there
    visited, surveyed = uid("cust"), uid("cust")
    homes = {visited: f"{uid('p')}|5|501", surveyed: f"{uid('p')}|5|502"}
    for cust, home in homes.items():
        project, building, unit = home.split("|")
        await deps.directory.upsert_customers([{"customer_id": cust, "region": region, "consent": True, "as_of":
                                                datetime.now(UTC), "units": [{"key": home, "project": project,
                                                                              "building": building, "unit": unit}]}])
    first = await lifecycle.schedule(deps, repair_visit(deps, visited, homes[visited]))
    assert first["status"] == "scheduled"

    year = 2100 + int(uid("y")[-3:], 16) % 800  # a campaign of its own
    started = await campaign.start(deps, region, year, "supervisor-1")
    await campaign.run(deps, {"payload": {"campaign_id": started["_id"]}})
    annual = {cust: await deps.surveys.get(schedule.survey_id("annual", region, str(year), cust)) for cust in homes}
    assert annual[visited]["status"] == "excluded"
    assert annual[visited]["exclusion"]["reason"] == "already_surveyed"
    assert annual[surveyed]["status"] == "scheduled"

    after = await lifecycle.schedule(deps, repair_visit(deps, surveyed, homes[surveyed]))
    assert after["status"] == "excluded" and annual[surveyed]["_id"] in after["exclusion"]["detail"]


async def test_a_campaign_due_within_the_quiet_period_of_another_is_refused(surveys):
    headers = token(roles=["supervisor"], regions=["guangzhou"])
    year = 2095 + int(uid("y")[-2:], 16) % 4  # the module has a store of its own: no other campaign there
    first = await surveys.post("/v1/campaigns", json={"region": "guangzhou", "year": year}, headers=headers)
    assert first.status_code == 202, first.text
    again = await surveys.post("/v1/campaigns", json={"region": "guangzhou", "year": year}, headers=headers)
    assert again.status_code == 202  # the same campaign: idempotent
    r = await surveys.post("/v1/campaigns", json={"region": "guangzhou", "year": year + 1}, headers=headers)
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["errors"][0]["field"] == "year"
