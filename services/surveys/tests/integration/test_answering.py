"""Answering on the real stack: answers validated (a 6 is a problem+json naming the
question), phone and home-visit records, the signed self-service page (forged, reused,
replaced and expired links refused; a draft resumed), cancelling with a reason, a
reminder and expiry with the clock moved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from crm_contracts import topics
from crm_runtime.testing import eventually

from .conftest import customer, customer_surveys, iso, known, send, survey_events, token, uid

pytestmark = pytest.mark.stack

ANSWERS = {"overall": 4, "timeliness": 5, "attitude": 4, "resolved": "yes"}


async def repair_visit(stack, surveys, completed_at: datetime | None = None) -> dict:
    cust = await customer(stack, units=[(uid("p"), "1", "101")])
    await known(surveys, cust)
    await send(stack, topics.PARTNER_REPAIRS, "crm.partner.repair.work-order-completed.v1", {
        "work_order_id": uid("wo"), "customer_id": cust, "project": uid("p"), "building": "1", "unit": "101",
        "category": "leak", "completed_at": iso(completed_at or datetime.now(UTC))})
    visits = await customer_surveys(surveys, cust)
    assert len(visits) == 1, visits
    [visit] = visits
    return visit


async def return_visit(stack, surveys) -> dict:
    cust = await customer(stack)
    await known(surveys, cust)
    await send(stack, topics.CASES_CASES, "crm.cases.case.closed.v1", {
        "case_id": uid("case"), "case_number": "SZ-2026-000999", "region": "shenzhen", "customer_id": cust,
        "status": "closed", "sequence": 7, "occurred_at": iso(datetime.now(UTC)), "outcome": "resolved"})
    [visit] = await customer_surveys(surveys, cust)
    return visit


async def link_of(stack, visit: dict) -> str:
    [event] = await survey_events(stack, "scheduled.v1", survey_id=visit["survey_id"], reminder=0)
    return event.json()["data"]["answer_path"]  # type: ignore[no-any-return]


async def test_a_score_of_6_is_refused_naming_the_question(stack, surveys):
    visit = await return_visit(stack, surveys)
    r = await surveys.post(f"/v1/surveys/{visit['survey_id']}/answers", headers=token(),
                           json={"mode": "phone", "answers": {**ANSWERS, "overall": 6}})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["errors"][0]["field"] == "answers.overall"
    missing = await surveys.post(f"/v1/surveys/{visit['survey_id']}/answers", headers=token(),
                                 json={"mode": "phone", "answers": {"overall": 3}})
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "answers.timeliness"
    home = await surveys.post(f"/v1/surveys/{visit['survey_id']}/answers", headers=token(),
                              json={"mode": "home_visit", "answers": ANSWERS})
    assert home.status_code == 422
    other_region = await surveys.post(f"/v1/surveys/{visit['survey_id']}/answers", headers=token(regions=["beijing"]),
                                      json={"mode": "phone", "answers": ANSWERS})
    assert other_region.status_code == 403


async def test_a_phone_interview_completes_the_survey_with_scores(stack, surveys):
    visit = await return_visit(stack, surveys)
    r = await surveys.post(f"/v1/surveys/{visit['survey_id']}/answers", headers=token(sub="agent-7"),
                           json={"mode": "phone", "answers": ANSWERS})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed" and r.json()["response"]["by"] == "agent-7"
    [done] = await survey_events(stack, "completed.v1", survey_id=visit["survey_id"])
    data = done.json()["data"]
    assert data["scores"] == {"overall": 4, "timeliness": 5, "attitude": 4}
    assert data["satisfied"] is True and data["dissatisfied"] is False and data["method"] == "phone"
    assert data["definition_version"] == 1 and data["answers"] == {"resolved": "yes"}
    again = await surveys.post(f"/v1/surveys/{visit['survey_id']}/answers", headers=token(),
                               json={"mode": "phone", "answers": ANSWERS})
    assert again.status_code == 409
    worklist = await surveys.get("/v1/worklist", params={"region": "shenzhen", "limit": 200}, headers=token())
    assert visit["survey_id"] not in [i["survey_id"] for i in worklist.json()["items"]]


async def test_a_home_visit_keeps_its_written_record(stack, surveys):
    visit = await repair_visit(stack, surveys)
    record = {"visited_at": iso(datetime.now(UTC)), "visitor": "王工", "participants": ["业主"],
              "notes": "现场查看卫生间，渗漏已修复，业主认可"}
    r = await surveys.post(f"/v1/surveys/{visit['survey_id']}/answers", headers=token(), json={
        "mode": "home_visit", "visit_record": record,
        "answers": {"overall": 2, "repair_quality": 2, "timeliness": 3, "fixed": "partly"}})
    assert r.status_code == 200, r.text
    assert r.json()["response"]["visit_record"]["notes"] == record["notes"]
    [done] = await survey_events(stack, "completed.v1", survey_id=visit["survey_id"])
    assert done.json()["data"]["dissatisfied"] is True and done.json()["data"]["method"] == "home_visit"


async def test_the_self_service_page_resumes_a_draft_then_refuses_its_reused_link(stack, surveys):
    visit = await return_visit(stack, surveys)
    path = await link_of(stack, visit)
    page = await surveys.get(path, params={"lang": "en"})
    assert page.status_code == 200 and "Return visit after your complaint" in page.text
    assert "http" not in page.text.split("<main>")[0].replace('content="width', "")  # nothing fetched from elsewhere
    zh = await surveys.get(path, headers={"Accept-Language": "zh-CN"})
    assert "投诉处理回访" in zh.text
    saved = await surveys.post(path, content="q_overall=2&q_timeliness=3&action=save",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert saved.status_code == 200
    resumed = await surveys.get(path)
    assert 'name="q_overall" value="2" checked' in resumed.text
    bad = await surveys.post(path, content="q_overall=6&action=submit",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert bad.status_code == 422 and "请选择范围内的分值" in bad.text
    done = await surveys.post(path, content="q_attitude=2&q_resolved=no&q_comment=还是漏&action=submit",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert done.status_code == 200 and "感谢" in done.text
    [event] = await survey_events(stack, "completed.v1", survey_id=visit["survey_id"])
    data = event.json()["data"]
    assert data["method"] == "online" and data["scores"]["overall"] == 2 and data["dissatisfied"] is True
    assert data["comment"] == "还是漏"
    reused = await surveys.get(path)
    assert reused.status_code == 410 and "已使用" in reused.text


async def test_forged_and_replaced_links_are_refused(stack, surveys):
    visit = await return_visit(stack, surveys)
    path = await link_of(stack, visit)
    forged = await surveys.get(path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB"), params={"lang": "en"})
    assert forged.status_code == 403 and "Invalid link" in forged.text
    assert (await surveys.get("/s/not-a-token")).status_code == 403
    r = await surveys.post(f"/v1/surveys/{visit['survey_id']}/link", headers=token())
    new_path = r.json()["path"]
    assert new_path != path
    assert (await surveys.get(path)).status_code == 410
    assert (await surveys.get(new_path)).status_code == 200


async def test_cancelling_publishes_the_reason(stack, surveys):
    visit = await repair_visit(stack, surveys)
    r = await surveys.post(f"/v1/surveys/{visit['survey_id']}/cancel", headers=token(),
                           json={"reason": "业主已出售房屋"})
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    [event] = await survey_events(stack, "excluded.v1", survey_id=visit["survey_id"])
    assert event.json()["data"]["reason"] == "other" and event.json()["data"]["detail"] == "业主已出售房屋"
    empty = await surveys.post(f"/v1/surveys/{visit['survey_id']}/cancel", headers=token(), json={"reason": ""})
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "reason"


async def test_an_unanswered_survey_is_reminded_then_expires_and_its_link_with_it(stack, surveys, clock):
    # The default policy: reminded 2 days after opening, expired 7 days after the deadline.
    # Opened 14 days ago minus ten minutes: the reminder is long past, the expiry ten minutes
    # away (time enough to store the visit and send its reminder on a loaded machine).
    completed = clock() - timedelta(days=7 + 7) + timedelta(minutes=10)
    visit = await repair_visit(stack, surveys, completed_at=completed)
    path = await link_of(stack, visit)
    [reminder] = await survey_events(stack, "scheduled.v1", survey_id=visit["survey_id"], reminder=1)
    assert reminder.json()["data"]["answer_path"] == path
    clock.move(timedelta(minutes=12))
    [expired] = await survey_events(stack, "expired.v1", survey_id=visit["survey_id"])
    assert expired.json()["data"]["kind"] == "repair_return_visit"
    page = await surveys.get(path)
    assert page.status_code == 410


async def test_coverage_counts_visits_due_and_done_per_project_and_product_type(stack, surveys):
    project = uid("覆盖")
    long_ago = datetime.now(UTC) - timedelta(days=800)
    visits = []
    for n in range(5):
        cust = await customer(stack, units=[(project, "1", f"{n}01")])
        await known(surveys, cust)
        await send(stack, topics.PARTNER_UNITS, "crm.partner.unit.delivered.v1", {
            "customer_id": cust, "project": project, "building": "1", "unit": f"{n}01",
            "delivered_at": iso(long_ago), "fit_out": "bare"})
        await customer_surveys(surveys, cust, count=2)  # the delivery visits: the home's product type is known
        await send(stack, topics.PARTNER_REPAIRS, "crm.partner.repair.work-order-completed.v1", {
            "work_order_id": uid("wo"), "customer_id": cust, "project": project, "building": "1",
            "unit": f"{n}01", "category": "wall", "completed_at": iso(datetime.now(UTC))})
        found = await customer_surveys(surveys, cust, count=3)
        visits.append(next(v for v in found if v["kind"] == "repair_return_visit"))

    async def row(**expected) -> dict | None:
        r = await surveys.get("/v1/coverage", params={"region": "shenzhen", "kind": "repair_return_visit"},
                              headers=token())
        found = next((i for i in r.json()["items"] if i["project"] == project), None)
        return found if found and all(found[k] == v for k, v in expected.items()) else None

    before = await eventually(lambda: row(due=5), timeout=20)  # counted just after each survey is stored
    assert before == {**before, "product_type": "bare", "done": 0, "households_done": 0, "meets_target": False}
    for i, visit in enumerate(visits):
        r = await surveys.post(f"/v1/surveys/{visit['survey_id']}/answers", headers=token(), json={
            "mode": "phone", "answers": {"overall": 5 - i % 2, "repair_quality": 4, "timeliness": 4, "fixed": "yes"}})
        assert r.status_code == 200, r.text
    after = await row(done=5)
    assert after is not None and after["households_done"] == 5 and after["meets_target"] and after["due"] == 5
