"""The nine-step procedure through the staff API on the real stack: each severity end to
end, refused steps, region scoping, repeats, collective incidents, SLA breaches and the
return visit."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from cases.bootstrap import create_app
from cases.handlers import case_id_for
from crm_contracts import topics
from crm_runtime.testing import event_of_type, eventually, make_event, produce, running_app, wait_for_messages

from .conftest import cases_settings, contact_data, send_contact, token
from .test_contacts import metric

pytestmark = pytest.mark.stack
CASE = "crm.cases.case."


async def case_for(cases, contact_id: str, headers=None) -> dict:
    case_id = case_id_for(contact_id)

    async def fetch():
        r = await cases.get(f"/v1/cases/{case_id}", headers=headers or token(roles=["supervisor"]))
        return r.json() if r.status_code == 200 else None

    return await eventually(fetch, timeout=30)


async def act(cases, case: dict, path: str, body: dict | None = None, *, roles=("agent",), expect=200) -> dict:
    r = await cases.post(f"/v1/cases/{case['case_id']}/{path}", json=body or {},
                         headers=token(roles=roles, regions=[case["region"]]))
    assert r.status_code == expect, (path, r.status_code, r.text)
    return r.json()


async def events_of(stack, case_id: str, type_suffix: str, count: int = 1) -> list:
    return await wait_for_messages(stack.bootstrap, topics.CASES_CASES,
                                   event_of_type(f"{CASE}{type_suffix}", case_id=case_id), count=count, timeout=30)


async def run_to_closure(cases, case: dict, *, legal: bool = False) -> dict:
    await act(cases, case, "validate", {"outcome": "valid", "explanation": "已受理"})
    await act(cases, case, "classify", {"severity": case["severity"], "category": "engineering_quality"})
    await act(cases, case, "assess", {"nature": "工程质量", "influence": "单户"})
    await act(cases, case, "start-investigation")
    await act(cases, case, "findings", {"responsible_department": "engineering", "root_cause": "防水层施工缺陷",
                                        "written_findings": "现场勘查确认防水层破损"})
    await act(cases, case, "start-handling", {"plan": "重做防水"})
    await act(cases, case, "progress", {"message_to_customer": "维修师傅明天上午上门"})
    if legal:
        await act(cases, case, "legal-opinion", {"opinion": "按合同保修条款处理，无法律风险"})
    await act(cases, case, "resolve", {"summary": "防水已重做，闭水试验通过"})
    await act(cases, case, "customer-confirmation", {"accepted": True})
    await act(cases, case, "department-approval", {"note": "同意"})
    await act(cases, case, "close")
    return await act(cases, case, "lesson", {"root_cause": "防水层施工缺陷", "responsible_department": "engineering",
                                             "improvement": "卫生间防水增加闭水试验验收节点"})


async def test_general_case_runs_the_whole_procedure(stack, cases):
    sent = await send_contact(stack)
    case = await case_for(cases, sent["contact_id"])
    assert case["status"] == "received" and case["severity"] == "general"
    received = datetime.fromisoformat(sent["received_at"])
    assert case["case_number"].startswith(f"SZ-{received.astimezone(ZoneInfo('Asia/Shanghai')).year}-")
    by_number = await cases.get(f"/v1/cases/{case['case_number']}", headers=token())
    assert by_number.json()["case_id"] == case["case_id"]

    done = await run_to_closure(cases, case)
    assert done["status"] == "lesson_recorded"
    actions = [t["action"] for t in done["timeline"]]
    assert actions[0] == "opened" and "progress_reported" in actions and actions[-1] == "lesson_recorded"
    assert all(t["actor"] for t in done["timeline"])
    for suffix in ("opened.v1", "validated.v1", "classified.v1", "progress-reported.v1", "resolved.v1",
                   "customer-confirmed.v1", "closed.v1", "lesson-recorded.v1"):
        await events_of(stack, case["case_id"], suffix)


async def test_a_major_case_needs_the_legal_opinion_before_it_is_resolved(stack, cases):
    sent = await send_contact(stack, subject="要起诉开发商", body="车库顶板裂缝，存在安全隐患，我已经请了律师，准备起诉。")
    case = await case_for(cases, sent["contact_id"])
    assert case["severity"] == "major"
    await act(cases, case, "validate", {"outcome": "valid", "explanation": "已受理"})
    await act(cases, case, "classify", {"severity": "major", "category": "engineering_quality"})
    await act(cases, case, "assess", {"nature": "结构安全", "influence": "整栋"})
    await act(cases, case, "start-investigation")
    await act(cases, case, "findings", {"responsible_department": "engineering", "root_cause": "养护不足",
                                        "written_findings": "检测报告附后"})
    await act(cases, case, "start-handling")
    refused = await cases.post(f"/v1/cases/{case['case_id']}/resolve", json={"summary": "已修复"}, headers=token())
    assert refused.status_code in (409, 422)
    assert refused.headers["content-type"] == "application/problem+json"
    assert "legal" in refused.text.lower()
    await act(cases, case, "legal-opinion", {"opinion": "法务意见：按质保条款维修并出具检测报告"})
    resolved = await act(cases, case, "resolve", {"summary": "已加固并出具检测报告"})
    assert resolved["status"] == "resolved"


async def test_a_crisis_escalates_at_once_to_the_regions_leadership(stack, cases):
    sent = await send_contact(stack, subject="业主要找媒体曝光", body="电梯故障导致业主受伤，业主说要联系电视台记者曝光。")
    case = await case_for(cases, sent["contact_id"])
    assert case["severity"] == "crisis"
    [escalated] = await events_of(stack, case["case_id"], "escalated.v1")
    assert escalated.json()["data"]["reason"] == "crisis"
    assert "on_site" in case["clocks"]


async def test_forbidden_transitions_are_refused_with_a_clear_error(stack, cases):
    sent = await send_contact(stack)
    case = await case_for(cases, sent["contact_id"])
    r = await cases.post(f"/v1/cases/{case['case_id']}/resolve", json={"summary": "x"}, headers=token())
    assert r.status_code == 409
    body = r.json()
    assert body["errors"][0]["field"] == "status" and "received" in body["detail"]
    r = await cases.post(f"/v1/cases/{case['case_id']}/close", json={}, headers=token())
    assert r.status_code == 409
    # A supervisor-only action by an agent.
    r = await cases.post(f"/v1/cases/{case['case_id']}/force-close", json={"reason": "重复"}, headers=token())
    assert r.status_code == 403
    r = await cases.post(f"/v1/cases/{case['case_id']}/validate", json={"outcome": "maybe", "explanation": "?"},
                         headers=token())
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "outcome"


async def test_an_agent_of_another_region_is_refused(stack, cases):
    sent = await send_contact(stack)
    case = await case_for(cases, sent["contact_id"])
    other = token(regions=["beijing"])
    assert (await cases.get(f"/v1/cases/{case['case_id']}", headers=other)).status_code == 403
    assert (await cases.post(f"/v1/cases/{case['case_id']}/validate",
                             json={"outcome": "valid", "explanation": "x"}, headers=other)).status_code == 403
    queue = await cases.get("/v1/cases", headers=other)
    assert all(item["region"] == "beijing" for item in queue.json()["items"])
    assert (await cases.get("/v1/cases", params={"region": "shenzhen"}, headers=other)).status_code == 403


async def test_every_contact_delivered_twice_opens_one_case(stack, cases):
    sent = await send_contact(stack)
    await produce(stack.bootstrap, topics.INTAKE_CONTACTS, sent["event"])  # the same event again
    case = await case_for(cases, sent["contact_id"])
    # A contact sent on the same key, behind the copy: once its case is open and announced,
    # the copy has been handled (and any event it wrongly caused is on the topic before).
    behind = contact_data()
    await produce(stack.bootstrap, topics.INTAKE_CONTACTS, make_event(
        "crm.intake.contact.received.v1", behind, region=behind["region"], subject=behind["contact_id"]),
        key=sent["contact_id"].encode())
    await events_of(stack, (await case_for(cases, behind["contact_id"]))["case_id"], "opened.v1")
    opened = await events_of(stack, case["case_id"], "opened.v1")
    assert len(opened) == 1
    db = cases.app.state.ctx.db
    assert await db["cases"].count_documents({"contact_ids": sent["contact_id"]}) == 1


async def test_a_further_contact_about_the_same_open_matter_joins_the_case(stack, cases):
    first = await send_contact(stack)
    case = await case_for(cases, first["contact_id"])
    again = await send_contact(stack, customer_id=first["customer_id"], channel="front_desk", project=first["project"],
                               subject="还是漏水", body="上次反映的卫生间漏水还没修好")
    await eventually(lambda: _has_contact(cases, case["case_id"], again["contact_id"]), timeout=30)
    assert not (await cases.get(f"/v1/cases/{case_id_for(again['contact_id'])}", headers=token())).status_code == 200


async def _has_contact(cases, case_id: str, contact_id: str) -> bool:
    r = await cases.get(f"/v1/cases/{case_id}", headers=token())
    return contact_id in r.json()["contact_ids"]


async def test_a_consultation_is_recorded_and_becomes_a_case_only_when_staff_decide(stack, cases):
    sent = await send_contact(stack, kind_hint="consultation", subject="交房时间", body="请问什么时候交房？")
    db = cases.app.state.ctx.db
    await eventually(lambda: db["contacts"].find_one({"_id": sent["contact_id"], "handled": True}), timeout=30)
    assert (await cases.get(f"/v1/cases/{case_id_for(sent['contact_id'])}", headers=token())).status_code == 404
    r = await cases.post(f"/v1/contacts/{sent['contact_id']}/open-case", headers=token())
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "received"
    # Asking again (a retried request) is the same case, not a second one.
    again = await cases.post(f"/v1/contacts/{sent['contact_id']}/open-case", headers=token())
    assert again.status_code == 200 and again.json()["case_id"] == r.json()["case_id"]


async def test_collective_incident_across_three_channels(stack, cases):
    project = f"金色家园{uuid.uuid4().hex[:4]}"
    channels = ["hotline", "forum", "front_desk", "hotline", "forum"]
    sent = [await send_contact(stack, region="shanghai", project=project, building="8", channel=ch,
                               subject="电梯经常故障", body="8栋电梯又坏了，物业维修不及时，老人上下楼很困难。")
            for ch in channels]
    [detected] = await wait_for_messages(
        stack.bootstrap, topics.CASES_CASES,
        lambda s: s.json().get("type") == "crm.cases.collective-incident.detected.v1"
        and s.json()["data"].get("project") == project, timeout=40)
    data = detected.json()["data"]
    assert data["customer_count"] == 5 and data["severity"] == "major"
    assert set(data["channels"]) == {"hotline", "forum", "front_desk"}
    headers = token(regions=["shanghai"])

    async def all_major() -> bool:
        for s in sent:
            r = await cases.get(f"/v1/cases/{case_id_for(s['contact_id'])}", headers=headers)
            if r.status_code != 200 or r.json()["severity"] != "major" or not r.json()["collective_incident_id"]:
                return False
        return True

    await eventually(all_major, timeout=30)


async def test_queue_filters_sorts_by_due_time_and_pages_with_a_cursor(stack, cases):
    for _ in range(3):
        await send_contact(stack, region="chengdu")
    headers = token(regions=["chengdu"])

    async def three():
        r = await cases.get("/v1/cases", params={"region": "chengdu", "status": "received"}, headers=headers)
        return r.json()["items"] if len(r.json()["items"]) >= 3 else None

    await eventually(three, timeout=30)
    first = await cases.get("/v1/cases", params={"region": "chengdu", "limit": 2}, headers=headers)
    assert len(first.json()["items"]) == 2 and first.json()["next_cursor"]
    second = await cases.get("/v1/cases", params={"region": "chengdu", "limit": 2,
                                                  "cursor": first.json()["next_cursor"]}, headers=headers)
    items = first.json()["items"] + second.json()["items"]
    assert len({i["case_id"] for i in items}) == len(items) >= 3
    dues = [i["sla_due_at"] for i in items]
    assert dues == sorted(dues)


async def test_an_sla_breach_fires_once_across_two_replicas_and_escalates(stack, suffix, cases):
    settings = cases_settings(stack, suffix)
    async with running_app(create_app(settings)) as a, running_app(create_app(settings)) as b:
        sent = await send_contact(stack, region="tianjin")
        case = await case_for(a, sent["contact_id"], headers=token(roles=["supervisor"], regions=["tianjin"]))
        breaches = await events_of(stack, case["case_id"], "sla-breached.v1")
        assert len(breaches) == 1, [(b.json()["id"], b.json()["data"]) for b in breaches]
        assert breaches[0].json()["data"]["clock"] == "first_reply"
        await events_of(stack, case["case_id"], "escalated.v1")
        await asyncio.sleep(3)
        breaches = await wait_for_messages(stack.bootstrap, topics.CASES_CASES,
                                           event_of_type(f"{CASE}sla-breached.v1", case_id=case["case_id"]),
                                           count=1, timeout=5)
        assert len({b.json()["id"] for b in breaches}) == 1
        r = await b.get(f"/v1/cases/{case['case_id']}", headers=token(regions=["tianjin"]))
        assert r.json()["clocks"]["first_reply"]["breached_at"] is not None
        # The business counter on /metrics: one breach between the replicas (the module's
        # own app is a third one, on the same database).
        counted = [await metric(replica, "crm_cases_sla_breaches_total", clock="first_reply")
                   for replica in (a, b, cases)]
        assert sum(counted) == 1, counted


async def test_a_dissatisfied_return_visit_reopens_the_case(stack, cases):
    sent = await send_contact(stack)
    case = await case_for(cases, sent["contact_id"])
    await run_to_closure(cases, case)
    survey = make_event("crm.surveys.survey.completed.v1", {
        "survey_id": f"sv-{uuid.uuid4().hex[:8]}", "kind": "case_return_visit", "customer_id": sent["customer_id"],
        "case_id": case["case_id"], "due_at": datetime.now(UTC).isoformat(), "scores": {"overall": 2},
        "satisfied": False, "dissatisfied": True, "completed_at": datetime.now(UTC).isoformat()},
        subject=case["case_id"])
    await produce(stack.bootstrap, topics.SURVEYS_SURVEYS, survey)
    [reopened] = await events_of(stack, case["case_id"], "reopened.v1")
    assert "dissatisfied" in reopened.json()["data"]["reason"]


async def test_an_sla_clock_survives_a_restart(stack):
    from crm_runtime.testing import unique_suffix

    suffix = unique_suffix()
    settings = cases_settings(stack, suffix).model_copy(update={"consumer_group_override": f"crm-cases{suffix}"})
    headers = token(roles=["supervisor"], regions=["tianjin"])
    async with running_app(create_app(settings)) as first:
        sent = await send_contact(stack, region="tianjin")
        case = await case_for(first, sent["contact_id"], headers=headers)
    # Nothing runs while the clock passes its due time.
    await asyncio.sleep(3)
    async with running_app(create_app(settings)):
        breaches = await events_of(stack, case["case_id"], "sla-breached.v1")
        # One breach: one event id. Across a restart the same breach event (same id) can
        # reach the topic twice; consumers drop the second by its id.
        assert len({b.json()["id"] for b in breaches}) == 1, [
            (b.json()["id"], b.partition, b.offset, b.headers.get("traceparent")) for b in breaches]
        assert breaches[0].json()["data"]["clock"] == "first_reply"
