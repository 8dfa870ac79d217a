"""Contacts on the real stack: a danger to people always opens a case whatever intake's
hint says; consultations, suggestions and praise are a work list staff answer, close or
turn into a case that keeps what the customer wrote; the business counters on /metrics."""

from __future__ import annotations

import re
import uuid

import pytest
from cases.handlers import case_id_for
from crm_contracts import topics
from crm_runtime.testing import event_of_type, eventually, wait_for_messages

from .conftest import send_contact, token

pytestmark = pytest.mark.stack

GAS_LEAK = {"channel": "front_desk", "kind_hint": "consultation", "kind_confidence": 0.0,
            "subject": "前台来访登记 / Front desk visit",
            "body": "业主来前台说家里厨房燃气泄漏，点火时发生闪燃，她母亲被烧伤已送医院。"}


async def metric(cases, name: str, **labels: str) -> float:
    text = (await cases.get("/metrics")).text
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    found = re.search(rf"^{name}\{{{re.escape(wanted)}\}} ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


async def handled(cases, contact_id: str) -> dict:
    db = cases.app.state.ctx.db
    return await eventually(lambda: db["contacts"].find_one({"_id": contact_id, "handled": True}), timeout=30)


async def listing(cases, region: str, **params) -> list[dict]:
    r = await cases.get("/v1/contacts", params={"region": region, **params}, headers=token(regions=[region]))
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def test_a_gas_leak_with_a_burned_relative_opens_a_crisis_case_whatever_the_hint(stack, cases):
    crises_before = await metric(cases, "crm_cases_opened_total", severity="crisis")
    sent = await send_contact(stack, region="hangzhou", **GAS_LEAK)
    headers = token(regions=["hangzhou"])

    async def opened():
        r = await cases.get(f"/v1/cases/{case_id_for(sent['contact_id'])}", headers=headers)
        return r.json() if r.status_code == 200 else None

    case = await eventually(opened, timeout=30)
    assert case["severity"] == "crisis" and case["status"] == "received"
    assert case["kind"] == "unclassified"  # intake could not tell; staff are not told "consultation"
    assert case["body"] == GAS_LEAK["body"]
    [escalated] = await wait_for_messages(stack.bootstrap, topics.CASES_CASES, event_of_type(
        "crm.cases.case.escalated.v1", case_id=case["case_id"]), timeout=30)
    assert escalated.json()["data"]["reason"] == "crisis"
    assert await metric(cases, "crm_cases_opened_total", severity="crisis") == crises_before + 1
    # It is a case, so it is not in the list of contacts waiting for an answer.
    assert sent["contact_id"] not in {i["contact_id"] for i in await listing(cases, "hangzhou")}


async def test_staff_list_answer_and_close_consultations_unanswered_first(stack, cases):
    region = "guangzhou"
    asked = await send_contact(stack, region=region, kind_hint="consultation", subject="交房时间",
                               body="请问8栋什么时候交房？")
    unsure = await send_contact(stack, region=region, kind_hint="suggestion", kind_confidence=0.0,
                                subject="小区建议", body="希望小区门口增加一个快递柜。")
    praise = await send_contact(stack, region=region, kind_hint="praise", subject="表扬保安",
                                body="王师傅帮我把东西搬上楼，非常感谢。")
    for sent in (asked, unsure, praise):
        await handled(cases, sent["contact_id"])

    rows = {i["contact_id"]: i for i in await listing(cases, region)}
    assert {asked["contact_id"], unsure["contact_id"], praise["contact_id"]} <= set(rows)
    assert rows[unsure["contact_id"]]["kind"] == "unclassified"
    assert rows[asked["contact_id"]]["kind"] == "consultation"
    assert all(rows[s["contact_id"]]["status"] == "unanswered" for s in (asked, unsure, praise))
    assert [i["contact_id"] for i in await listing(cases, region, kind="unclassified")] == [unsure["contact_id"]]

    answered_before = await metric(cases, "crm_cases_contacts_answered_total", kind="consultation")
    reply = {"answer": "8栋预计6月30日交房，届时会短信通知您。/ Building 8 is handed over on 30 June."}
    r = await cases.post(f"/v1/contacts/{asked['contact_id']}/answer", json=reply, headers=token(regions=[region]))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "answered" and r.json()["answer"]["text"] == reply["answer"]
    # The same answer again (a retried request) changes nothing; another answer is refused.
    again = await cases.post(f"/v1/contacts/{asked['contact_id']}/answer", json=reply, headers=token(regions=[region]))
    assert again.status_code == 200
    other = await cases.post(f"/v1/contacts/{asked['contact_id']}/answer", json={"answer": "另一个答复"},
                             headers=token(regions=[region]))
    assert other.status_code == 409 and other.headers["content-type"] == "application/problem+json"
    assert await metric(cases, "crm_cases_contacts_answered_total", kind="consultation") == answered_before + 1
    detail = (await cases.get(f"/v1/contacts/{asked['contact_id']}", headers=token(regions=[region]))).json()
    assert detail["body"] == asked["body"] and detail["answer"]["text"] == reply["answer"]
    assert detail["answer"]["by"] == "agent-1" and detail["status"] == "answered"

    items = await listing(cases, region)
    statuses = [i["status"] for i in items]
    assert statuses == sorted(statuses, key=["unanswered", "answered", "case_opened"].index)
    assert next(i for i in items if i["contact_id"] == asked["contact_id"])["status"] == "answered"
    assert asked["contact_id"] not in {i["contact_id"] for i in await listing(cases, region, status="unanswered")}

    empty = await cases.post(f"/v1/contacts/{praise['contact_id']}/answer", json={"answer": ""},
                             headers=token(regions=[region]))
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "answer"


async def test_a_case_opened_from_a_suggestion_keeps_its_subject_and_body(stack, cases):
    region = "guangzhou"
    sent = await send_contact(stack, region=region, kind_hint="suggestion", subject="车库照明",
                              body="地下车库B区灯坏了一半，晚上很暗，建议尽快更换。")
    await handled(cases, sent["contact_id"])
    r = await cases.post(f"/v1/contacts/{sent['contact_id']}/open-case", headers=token(regions=[region]))
    assert r.status_code == 200, r.text
    case = r.json()
    assert case["subject"] == sent["subject"] and case["body"] == sent["body"]
    assert case["case_id"] == case_id_for(sent["contact_id"])
    assert sent["contact_id"] in {i["contact_id"] for i in await listing(cases, region, status="case_opened")}
    assert sent["contact_id"] not in {i["contact_id"] for i in await listing(cases, region, status="unanswered")}
    refused = await cases.post(f"/v1/contacts/{sent['contact_id']}/answer", json={"answer": "已处理"},
                               headers=token(regions=[region]))
    assert refused.status_code == 409


async def test_contacts_of_another_region_are_refused_and_unknown_ones_are_404(stack, cases):
    sent = await send_contact(stack, region="guangzhou", kind_hint="consultation", subject="物业费",
                              body="物业费怎么交？")
    await handled(cases, sent["contact_id"])
    other = token(regions=["beijing"])
    assert (await cases.get(f"/v1/contacts/{sent['contact_id']}", headers=other)).status_code == 403
    assert (await cases.post(f"/v1/contacts/{sent['contact_id']}/answer", json={"answer": "x"},
                             headers=other)).status_code == 403
    assert (await cases.get("/v1/contacts", params={"region": "guangzhou"}, headers=other)).status_code == 403
    mine = await cases.get("/v1/contacts", headers=other)
    assert all(i["region"] == "beijing" for i in mine.json()["items"])
    missing = await cases.post(f"/v1/contacts/{uuid.uuid4()}/open-case", headers=token(regions=["guangzhou"]))
    assert missing.status_code == 404
    bad = await cases.get("/v1/contacts", params={"region": "guangzhou", "kind": "rumour"},
                          headers=token(regions=["guangzhou"]))
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "kind"
