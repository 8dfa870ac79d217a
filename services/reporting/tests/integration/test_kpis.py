"""Events of every kind for two regions and two months, on the real Kafka and FerretDB:
every KPI equals the count done by hand in `scenario.py`; scoping, drill-down, the XLSX,
and a redelivery of every batch."""

from __future__ import annotations

import asyncio
import io

import pytest
from crm_runtime.testing import eventually, running_app
from openpyxl import load_workbook
from reporting.adapters import rollups
from reporting.adapters.store import Generation, decode
from reporting.bootstrap import create_app
from reporting.domain.rollups import rollups_of
from reporting.entrypoints.cli import rebuild
from reporting.entrypoints.kafka import consumed_topics

from . import scenario
from .conftest import group_caught_up, reporting_settings, token

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
async def world(stack, reporting):
    s = scenario.build()
    await s.events.publish(stack.bootstrap)

    async def settled():
        # The last event of every partition the scenario writes to has been folded: each
        # topic's partitions are consumed independently, so one month or region being
        # complete says nothing about another (CI once read April's contacts too early).
        april = await kpis(reporting, month=scenario.APRIL)
        march = await kpis(reporting)
        project = await kpis(reporting, project=s.project)
        shanghai = await kpis(reporting, region="shanghai")
        return (april["reply_timeliness"]["base"] == 1 and april["contacts"]["value"] == 2
                and march["contacts"]["value"] == 10 and march["cases_opened"]["value"] == 4
                and march["cases_opened"]["by_status"] == {"lesson_recorded": 2, "closed": 1, "received": 1}
                and march["lessons_pareto"]["pareto"][:1] == [{"root_cause": "施工质量", "count": 2,
                                                               "share": 1.0, "cumulative_share": 1.0}]
                and march["collective_incidents"]["value"] == 1 and march["nps"]["base"] == 3
                and march["return_visit_coverage"]["base"] == 2 and march["annual_overall"]["base"] == 2
                and project["repairs_45_days"]["value"] == 2
                and project["repairs_per_household_half_year"]["value"] == 1.5
                and (shanghai["contacts"]["value"], shanghai["cases_opened"]["value"]) == (1, 1))

    await eventually(settled, timeout=120, interval=0.5)
    return s


async def kpis(client, region="shenzhen", month=scenario.MARCH, headers=None, **params) -> dict:
    r = await client.get("/v1/kpis", params={"region": region, "month": month, **params},
                         headers=headers or token(regions=[region]))
    assert r.status_code == 200, r.text
    return {row["kpi"]: row for row in r.json()["kpis"]}


async def test_every_kpi_equals_the_hand_count(reporting, world):
    m = await kpis(reporting)
    assert m["contacts"]["value"] == 10
    assert m["channel_mix"]["shares"] == {"forum": 0.1, "hotline": 0.3, "front_desk": 0.4, "letter": 0.2}
    assert m["cases_opened"]["value"] == 4
    assert m["cases_opened"]["by_department"] == {"engineering": 2, "sales": 1, "unassigned": 1}
    assert m["cases_opened"]["by_category"] == {"engineering_quality": 1, "sales_service": 1, "unclassified": 2}
    assert m["cases_opened"]["by_status"] == {"lesson_recorded": 2, "closed": 1, "received": 1}
    assert (m["reply_timeliness"]["value"], m["reply_timeliness"]["met"]) == (1.0, True)
    assert m["time_to_close_hours"]["value"] == 37.0  # (72 h + 2 h) / 2
    assert m["sla_breaches"]["value"] == 1
    assert m["collective_incidents"]["value"] == 1
    assert (m["return_visit_coverage"]["value"], m["return_visit_coverage"]["met"]) == (0.5, False)
    assert m["repair_satisfaction"]["value"] == pytest.approx(2 / 3) and m["repair_satisfaction"]["met"] is False
    assert m["repair_complaint_share"]["value"] == pytest.approx(1 / 3)
    assert (m["sales_satisfaction"]["value"], m["sales_satisfaction"]["met"]) == (1.0, True)
    assert (m["sales_complaint_share"]["value"], m["sales_complaint_share"]["met"]) == (0.0, True)
    assert m["nps"]["value"] == 33.3  # (2 promoters - 1 detractor) / 3
    assert m["annual_overall"]["value"] == 0.5 and m["annual_overall"]["target"] == 0.8
    assert m["annual_amenities"]["value"] == 0.5
    assert m["lessons_pareto"]["pareto"] == [
        {"root_cause": "施工质量", "count": 2, "share": 1.0, "cumulative_share": 1.0}]

    april = await kpis(reporting, month=scenario.APRIL)
    assert (april["reply_timeliness"]["value"], april["reply_timeliness"]["met"]) == (0.0, False)
    assert april["contacts"]["by_kind"] == {"complaint": 1, "consultation": 1}
    assert april["cases_opened"]["value"] == 0  # c2 was opened in March

    project = await kpis(reporting, project=world.project)
    assert project["repairs_45_days"]["value"] == 2
    assert project["repairs_per_household_delivery"]["value"] == 1.0  # 2 repairs / 2 households
    assert project["repairs_per_household_half_year"]["value"] == 1.5
    assert (project["leak_rate"]["value"], project["leak_rate"]["met"]) == (0.5, False)

    engineering = await kpis(reporting, department="engineering")
    assert engineering["cases_opened"]["value"] == 2 and engineering["reply_timeliness"]["value"] == 1.0
    sales = await kpis(reporting, department="sales", month=scenario.APRIL)
    assert sales["reply_timeliness"]["value"] == 0.0


async def test_a_regions_user_sees_only_that_region(reporting, world):
    shanghai = token(regions=["shanghai"])
    r = await reporting.get("/v1/kpis", params={"region": "shenzhen", "month": scenario.MARCH}, headers=shanghai)
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
    m = await kpis(reporting, region="shanghai", headers=shanghai)
    assert (m["contacts"]["value"], m["cases_opened"]["value"], m["reply_timeliness"]["value"]) == (1, 1, 1.0)
    r = await reporting.get("/v1/reports/monthly-complaints", params={"region": "shenzhen"}, headers=shanghai)
    assert r.status_code == 403


async def test_bad_input_is_a_problem_naming_the_field(reporting, world):
    r = await reporting.get("/v1/kpis", params={"region": "shenzhen", "month": "2019-13"}, headers=token())
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "month"
    r = await reporting.get("/v1/kpis", params={"region": "atlantis"}, headers=token(regions=["*"]))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "region"


async def test_drill_down_lists_the_ids_behind_a_kpi(reporting, world):
    m = await kpis(reporting)
    drill = m["reply_timeliness"]["drill"]
    r = await reporting.get("/v1/kpis/drill", headers=token(), params={
        "region": "shenzhen", "month": scenario.MARCH, "counter": drill["numerator"]})
    assert r.json()["ids"] == [world.cases["c1"]] and r.json()["complete"]
    r = await reporting.get("/v1/kpis/drill", headers=token(), params={
        "region": "shenzhen", "month": scenario.MARCH, "counter": "contacts:channel:letter"})
    assert len(r.json()["ids"]) == 2 and set(r.json()["ids"]) <= set(world.contacts)


async def test_the_xlsx_holds_the_numbers_of_the_json(reporting, world):
    params = {"region": "shenzhen", "month": scenario.MARCH}
    report = (await reporting.get("/v1/reports/monthly-complaints", params=params, headers=token())).json()
    r = await reporting.get("/v1/reports/monthly-complaints", params={**params, "format": "xlsx"}, headers=token())
    assert r.status_code == 200
    book = load_workbook(io.BytesIO(r.content))
    summary = book["指标汇总 Summary"]
    assert summary.freeze_panes == "A2"
    header = [c.value for c in summary[1]]
    assert "数值 / value" in header
    rows = {row[0]: row for row in summary.iter_rows(min_row=2, values_only=True)}
    col = header.index("数值 / value")
    for item in report["summary"]:
        assert rows[item["kpi"]][col] == item["value"]
    departments = book["部门回复及时率 Departments"]
    dept_header = [c.value for c in departments[1]]
    timeliness = {row[0]: row[dept_header.index("及时率 / timeliness")]
                  for row in departments.iter_rows(min_row=2, values_only=True)}
    assert timeliness == {d["department"]: d["timeliness"] for d in report["departments"]}
    assert timeliness["engineering"] == 1.0
    assert departments.cell(row=2, column=dept_header.index("及时率 / timeliness") + 1).number_format == "0.0%"
    csv = await reporting.get("/v1/reports/monthly-complaints", params={**params, "format": "csv"}, headers=token())
    assert "及时率 / timeliness" in csv.text and "engineering" in csv.text


async def test_every_batch_redelivered_counts_once(stack, suffix, reporting, world):
    before = await kpis(reporting)
    group = f"crm-reporting{suffix}-again"
    # A second consumer of the same read models, from the first offset: every batch again.
    app = create_app(reporting_settings(stack, suffix, group=group))
    async with running_app(app) as again:
        await eventually(lambda: group_caught_up(stack.bootstrap, group, list(consumed_topics())), timeout=120)
        assert await kpis(again) == before
    assert await kpis(reporting, project=world.project) == await kpis(reporting, project=world.project)


async def test_a_late_event_restates_its_month_but_not_the_month_close(stack, reporting, world):
    closer = token(roles=["supervisor"])
    r = await reporting.post("/v1/reports/month-close", json={"region": "shenzhen", "month": scenario.MARCH},
                             headers=closer)
    assert r.status_code == 201, r.text
    assert any(o["topic"] == "crm.intake.contacts.v1" and o["offset"] >= 0 for o in r.json()["offsets"])
    again = await reporting.post("/v1/reports/month-close", json={"region": "shenzhen", "month": scenario.MARCH},
                                 headers=closer)
    assert again.status_code == 200 and again.json()["closed_at"] == r.json()["closed_at"]
    # Today, a letter received in March reaches us.
    late = scenario.Scenario()
    late.contact("letter", scenario.at(3, 28))
    await late.events.publish(stack.bootstrap)

    async def restated():
        return (await kpis(reporting))["contacts"]["value"] == 11

    await eventually(restated, timeout=60)
    closed = await kpis(reporting, as_of="close")
    assert closed["contacts"]["value"] == 10
    assert closed["channel_mix"]["counts"]["letter"] == 2
    assert (await kpis(reporting))["channel_mix"]["counts"]["letter"] == 3
    report = await reporting.get("/v1/reports/monthly-complaints", headers=token(),
                                 params={"region": "shenzhen", "month": scenario.MARCH, "as_of": "close"})
    assert {c["channel"]: c["contacts"] for c in report.json()["channels"]}["letter"] == 2
    r = await reporting.get("/v1/kpis", params={"region": "shenzhen", "month": scenario.APRIL, "as_of": "close"},
                            headers=token())
    assert r.status_code == 404 and r.json()["errors"][0]["field"] == "as_of"


async def test_a_rebuild_equals_the_live_models_and_the_api_answers_throughout(stack, suffix, reporting, world):
    live = await kpis(reporting)
    project = await kpis(reporting, project=world.project)
    # a few entities held as documents at a time: most are let go as text and taken back later
    task = asyncio.create_task(rebuild(reporting_settings(stack, suffix), progress=False, follow_s=0,
                                       max_entities=6))
    answers = 0
    while not task.done():
        assert await kpis(reporting) == live  # first from g1, then, once switched, from g2
        answers += 1
        await asyncio.sleep(0.05)
    result = await task
    assert result.switched and (result.previous, result.generation) == ("g1", "g2") and answers > 0
    assert result.events >= len(world.contacts)
    async def from_g2():  # the API re-reads the pointer at most a second later
        r = await reporting.get("/v1/kpis", params={"region": "shenzhen", "month": scenario.MARCH}, headers=token())
        return r if r.json()["generation"] == "g2" else None

    r = await eventually(from_g2, timeout=10)
    assert {row["kpi"]: row for row in r.json()["kpis"]} == live
    assert await kpis(reporting, project=world.project) == project
    db = reporting.app.state.ctx.db
    g1 = {d["_id"]: decode(d)["counters"] async for d in db["g1_shards"].find({})}
    g2 = {d["_id"]: decode(d)["counters"] async for d in db["g2_shards"].find({})}
    assert g1 == g2 and len(g2) > 20
    # the roll-ups the queries read: the live ones, the rebuilt ones and the sum of the shards agree
    r1 = {d["_id"]: rollups.decode(d)[0]["counters"] async for d in db["g1_rollups"].find({})}
    r2 = {d["_id"]: rollups.decode(d)[0]["counters"] async for d in db["g2_rollups"].find({})}
    summed = rollups_of([decode(d) async for d in db["g1_shards"].find({})])
    assert r1 == r2 == {rid: d["counters"] for rid, d in summed.items()} and len(r2) > 10
    facts1 = {e: d["facts"] for e, d in (await Generation(db, "g1").all_entities()).items()}
    facts2 = {e: d["facts"] for e, d in (await Generation(db, "g2").all_entities()).items()}
    assert facts1 == facts2 and len(facts2) > 20
    assert await db["g2_entities"].count_documents({}) == 0  # stored many to a page
    assert await db["g2_pages"].count_documents({}) > 0


async def test_channel_statistics_are_counted_here(reporting, world):
    r = await reporting.get("/v1/stats/channels", headers=token(), params={
        "region": "shenzhen", "from_month": scenario.MARCH, "to_month": scenario.APRIL})
    body = r.json()
    assert body["total"] >= 13  # 10 in March (11 once the late letter came), 2 hotline in April
    counts = {row["channel"]: row["count"] for row in body["channels"]}
    assert counts["hotline"] == 5 and counts["front_desk"] == 4
    r = await reporting.get("/v1/stats/channels", headers=token(), params={
        "region": "shenzhen", "from_month": scenario.APRIL, "to_month": scenario.MARCH})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "from_month"


async def test_after_a_rebuild_switched_the_running_service_keeps_the_new_models_current(stack, suffix, reporting,
                                                                                          world):
    before = (await kpis(reporting))["contacts"]["value"]
    # The command stops once switched: from then on only the running service can count.
    result = await rebuild(reporting_settings(stack, suffix), progress=False, follow_s=0)
    assert result.switched
    late = scenario.Scenario()
    late.contact("letter", scenario.at(3, 29))
    await late.events.publish(stack.bootstrap)

    async def counted_in_the_new_generation():
        r = await reporting.get("/v1/kpis", params={"region": "shenzhen", "month": scenario.MARCH},
                                headers=token())
        body = r.json()
        contacts = {row["kpi"]: row for row in body["kpis"]}["contacts"]["value"]
        return body["generation"] == result.generation and contacts == before + 1

    assert await eventually(counted_in_the_new_generation, timeout=90, interval=0.5)


async def group_members(bootstrap: str, group: str) -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
        (described,) = response.groups  # (error, group, state, protocol type, protocol, members, ...)
        return len(described[5])
    finally:
        await admin.close()


async def test_after_a_switch_nothing_more_is_written_into_the_old_generation(stack, suffix, reporting, world):
    db = reporting.app.state.ctx.db
    started_with = reporting.app.state.ctx.settings.consumer_group  # the group of the generation it started with
    result = await rebuild(reporting_settings(stack, suffix), progress=False, follow_s=0)
    assert result.switched

    async def old_group_left():
        return await group_members(stack.bootstrap, started_with) == 0

    assert await eventually(old_group_left, timeout=60, interval=0.5)  # the old generation's consumers stopped
    first = "g1"
    before = {d["_id"]: d async for d in db[f"{first}_shards"].find({})}
    entities_before = await Generation(db, first).all_entities()
    start = (await kpis(reporting))["contacts"]["value"]
    late = scenario.Scenario()
    late.contact("letter", scenario.at(3, 30))
    await late.events.publish(stack.bootstrap)

    async def counted():
        r = await reporting.get("/v1/kpis", params={"region": "shenzhen", "month": scenario.MARCH},
                                headers=token())
        body = r.json()
        return (body["generation"] == result.generation
                and {row["kpi"]: row for row in body["kpis"]}["contacts"]["value"] == start + 1)

    assert await eventually(counted, timeout=90, interval=0.5)
    assert await eventually(lambda: group_caught_up(stack.bootstrap, f"{started_with}-{result.generation}",
                                                    list(consumed_topics())), timeout=60, interval=0.5)
    assert {d["_id"]: d async for d in db[f"{first}_shards"].find({})} == before
    assert await Generation(db, first).all_entities() == entities_before
