"""Each trigger end to end on the real Kafka and store: cause event in, the right message
handed to the channel, its delivery event out, its status in the staff API."""

from __future__ import annotations

import json
import sys
import types
import uuid
from datetime import datetime, timedelta

import pytest
from crm_contracts import topics
from crm_runtime.testing import (
    event_of_type,
    eventually,
    make_event,
    produce,
    running_app,
    wait_for_messages,
)
from notifications.adapters.gateways import Receipt, Reply
from notifications.adapters.ledger import message_id
from notifications.handlers import birthdays, callbacks

from .conftest import (
    PROVIDER_TOKEN,
    TZ,
    FakeClock,
    case_data,
    case_event,
    customer,
    fresh_app,
    token,
    upsert,
)

pytestmark = pytest.mark.stack
SENT = "crm.notifications.notification.sent.v1"
FAILED = "crm.notifications.notification.failed.v1"


@pytest.fixture(scope="module")
async def svc(stack):
    app, gateways = await fresh_app(stack, FakeClock(datetime(2026, 12, 1, 10, 0, tzinfo=TZ)),  # a Tuesday morning
                                    CRM_NOTIFICATIONS_SUPERVISORS='{"shenzhen": ["sup-9"]}')
    async with running_app(app) as client:
        client.deps = app.state.ctx.app_deps
        client.sms = gateways["sms"]
        client.email = gateways["email"]
        client.letter = gateways["letter"]
        yield client


async def known(svc, stack, **kw) -> dict:
    data = customer(**kw)
    await upsert(stack, data)
    await eventually(lambda: svc.deps.directory.get(data["customer_id"]), timeout=30)
    return data


async def status_of(svc, mid: str, *statuses: str, timeout: float = 20) -> dict:
    async def check():
        doc = await svc.deps.ledger.get(mid)
        return doc if doc and doc["status"] in statuses else None
    return await eventually(check, timeout=timeout)


async def test_an_opened_complaint_and_its_progress_reach_the_customer_by_sms(svc, stack):
    c = await known(svc, stack)
    data = case_data(c["customer_id"])
    await case_event(stack, "opened", {**data, "channel": "hotline", "kind_hint": "complaint"})
    await case_event(stack, "progress-reported", {**data, "message_to_customer": "维修师傅明天上午上门"})
    phone = c["phones"][0]
    await eventually(lambda: len(svc.sms.to(phone)) >= 2, timeout=30)
    ack, progress = svc.sms.to(phone)
    assert data["case_number"] in ack.body and ack.template_code == "case.acknowledged"
    assert "维修师傅明天上午上门" in progress.body and progress.template_code == "case.progress"
    assert ack.message_id == message_id(f"ack:{data['case_id']}", c["customer_id"], "sms")
    await wait_for_messages(stack.bootstrap, topics.NOTIFICATIONS_DELIVERIES,
                            event_of_type(SENT, customer_id=c["customer_id"], case_id=data["case_id"]), count=2)
    r = await svc.get(f"/v1/customers/{c['customer_id']}/messages", headers=token())
    assert r.status_code == 200
    rows = r.json()["messages"]
    assert {(m["template_id"], m["status"]) for m in rows} == {("case.acknowledged", "sent"), ("case.progress", "sent")}
    assert all(m["template_version"] == 1 and phone not in json.dumps(m) for m in rows)  # the number is masked
    other = await svc.get(f"/v1/customers/{c['customer_id']}/messages", headers=token(regions=["beijing"]))
    assert other.status_code == 403


async def test_redelivered_cause_events_send_nothing_twice(svc, stack):
    c = await known(svc, stack)
    data = case_data(c["customer_id"])
    event = await case_event(stack, "resolved", {**data, "summary": "已更换防水层。"})
    for _ in range(2):
        await produce(stack.bootstrap, topics.CASES_CASES, event)
    # A later event of the same case arriving proves the earlier copies were consumed.
    await case_event(stack, "progress-reported", {**data, "message_to_customer": "回访已安排"})
    phone = c["phones"][0]
    await eventually(lambda: any(m.template_code == "case.progress" for m in svc.sms.to(phone)), timeout=30)
    assert [m.template_code for m in svc.sms.to(phone)] == ["case.resolved", "case.progress"]
    assert "请回复或致电确认" in svc.sms.to(phone)[0].body


async def test_opened_then_validated_acknowledges_once(svc, stack):
    c = await known(svc, stack)
    data = case_data(c["customer_id"])
    await case_event(stack, "opened", {**data, "channel": "forum", "kind_hint": "complaint"})
    await case_event(stack, "validated", {**data, "status": "validated", "outcome": "valid"})
    await case_event(stack, "progress-reported", {**data, "message_to_customer": "已派单"})
    await eventually(lambda: len(svc.sms.to(c["phones"][0])) >= 2, timeout=30)
    assert [m.template_code for m in svc.sms.to(c["phones"][0])] == ["case.acknowledged", "case.progress"]


async def test_staff_hear_of_assignment_escalation_breach_and_collective_incidents(svc, stack):
    data = case_data(None, assignee="agent-42")
    await case_event(stack, "assigned", {**data, "department": "engineering"})
    await case_event(stack, "escalated", {**data, "reason": "重大投诉", "escalated_to": "regional_director"})
    await case_event(stack, "sla-breached", {**data, "clock": "first_reply", "due_at": datetime.now(TZ).isoformat()})
    incident = {"incident_id": f"inc-{uuid.uuid4().hex[:8]}", "region": "shenzhen", "project": "碧水湾",
                "building": "3", "category": "engineering_quality", "severity": "crisis", "customer_count": 12,
                "window_start": datetime.now(TZ).isoformat(), "window_end": datetime.now(TZ).isoformat(),
                "occurred_at": datetime.now(TZ).isoformat()}
    await case_event(stack, "crm.cases.collective-incident.detected.v1", incident)

    async def inbox(sub, roles=("agent",)):
        r = await svc.get("/v1/inbox", headers=token(sub=sub, roles=roles))
        return r.json()["items"]

    mine = await eventually(lambda: _with(inbox("agent-42"), 2), timeout=30)
    assert sorted(i["template"] for i in mine) == ["staff.case_assigned", "staff.sla_breached"]
    assert all(data["case_number"] in i["body"] for i in mine)
    sup = await eventually(lambda: _with(inbox("sup-9", ("supervisor",)), 3), timeout=30)
    assert sorted(i["template"] for i in sup) == ["staff.case_escalated", "staff.collective_incident",
                                                 "staff.sla_breached"]
    assert any("12位客户" in i["body"] for i in sup)
    assert await inbox("agent-43") == []
    r = await svc.post(f"/v1/inbox/{mine[0]['message_id']}/read", headers=token(sub="agent-42"))
    assert r.status_code == 200
    assert (await svc.post(f"/v1/inbox/{mine[0]['message_id']}/read", headers=token(sub="agent-43"))).status_code == 404


async def _with(items_coro, count: int):
    items = await items_coro
    return items if len(items) >= count else None


async def test_sales_welcome_move_in_and_visit_notice(svc, stack):
    c = await known(svc, stack, units=[("p-welcome", "1", "101")])
    now = svc.deps.clock()
    await produce(stack.bootstrap, topics.PARTNER_SALES, make_event("crm.partner.sales.contract-signed.v1", {
        "contract_id": "k-1", "customer_id": c["customer_id"], "project": "p-welcome", "project_name": "碧水湾",
        "building": "1", "unit": "101", "signed_at": (now - timedelta(days=1)).isoformat(),
        "specialist": {"name": "李娜", "phone": "0755-1234567"}}))
    await produce(stack.bootstrap, topics.PARTNER_UNITS, make_event("crm.partner.unit.delivered.v1", {
        "customer_id": c["customer_id"], "project": "p-welcome", "building": "1", "unit": "101",
        "delivered_at": now.isoformat(), "fit_out": "finished"}))
    await produce(stack.bootstrap, topics.SURVEYS_SURVEYS, make_event("crm.surveys.survey.scheduled.v1", {
        "survey_id": "s-1", "kind": "living_3_months", "customer_id": c["customer_id"],
        "due_at": (now + timedelta(days=7)).isoformat(), "notice_at": (now - timedelta(minutes=1)).isoformat()}))
    await eventually(lambda: len(svc.sms.to(c["phones"][0])) >= 3, timeout=30)
    by_template = {m.template_code: m for m in svc.sms.to(c["phones"][0])}
    assert "客户专员李娜" in by_template["sales.welcome"].body
    assert "p-welcome1栋101已交付" in by_template["unit.move_in"].body
    assert (now + timedelta(days=7)).date().isoformat() in by_template["survey.visit_notice"].body


async def test_an_opted_out_customer_gets_no_greeting_but_still_the_acknowledgement(svc, stack):
    today = svc.deps.clock().date()
    c = await known(svc, stack, birthday=today.replace(year=1980).isoformat())
    phone = c["phones"][0]
    reply = Reply(phone=phone, content="TD", received_at=svc.deps.clock())
    assert await callbacks.apply_reply(svc.deps, reply) == 1
    assert await callbacks.apply_reply(svc.deps, reply) == 0  # the provider called back twice
    await birthdays(svc.deps, "shenzhen", today)
    data = case_data(c["customer_id"])
    await case_event(stack, "opened", {**data, "channel": "hotline", "kind_hint": "complaint"})
    await eventually(lambda: svc.sms.to(phone), timeout=30)
    greeting = await svc.deps.ledger.get(message_id(f"birthday:{c['customer_id']}:{today}", c["customer_id"], "sms"))
    assert greeting["status"] == "suppressed" and "opted out" in greeting["reason"]
    assert [m.template_code for m in svc.sms.to(phone)] == ["case.acknowledged"]
    r = await svc.get(f"/v1/customers/{c['customer_id']}/opt-outs", headers=token())
    [entry] = r.json()["opt_outs"]
    assert entry["source"] == "sms_reply" and entry["evidence"]["reply"] == "TD"
    # A customer without that opt-out gets the greeting.
    d = await known(svc, stack, birthday=today.replace(year=1990).isoformat())
    await eventually(lambda: _contains(svc.deps.directory.born_on(today), d["customer_id"]), timeout=20)
    await birthdays(svc.deps, "shenzhen", today)
    await eventually(lambda: svc.sms.to(d["phones"][0]), timeout=20)
    assert "生日快乐" in svc.sms.to(d["phones"][0])[0].body


async def test_no_consent_is_suppressed_with_the_reason_and_email_is_used_when_sms_is_not_allowed(svc, stack):
    none = await known(svc, stack, consent={"sms": False, "email": False, "letter": False})
    mail = await known(svc, stack, consent={"sms": False, "email": True, "letter": False}, language="en")
    for c in (none, mail):
        await case_event(stack, "opened", {**case_data(c["customer_id"]), "channel": "hotline"})
    await eventually(lambda: svc.email.to(mail["email"]), timeout=30)
    [m] = svc.email.to(mail["email"])
    assert m.subject.startswith("Complaint received") and m.language == "en"
    rows = await eventually(lambda: _history(svc, none["customer_id"]), timeout=20)
    assert rows[0]["status"] == "suppressed" and rows[0]["reason"] == "no consent for sms"
    await wait_for_messages(stack.bootstrap, topics.NOTIFICATIONS_DELIVERIES,
                            event_of_type(FAILED, customer_id=none["customer_id"], error="no consent for sms"))


async def _contains(ids_coro, wanted: str) -> bool:
    return wanted in await ids_coro


async def _history(svc, customer_id):
    r = await svc.get(f"/v1/customers/{customer_id}/messages", headers=token())
    return r.json()["messages"] if r.status_code == 200 and r.json()["messages"] else None


async def test_provider_failures_retry_then_fail_with_the_reason(svc, stack):
    transient = await known(svc, stack)
    permanent = await known(svc, stack)
    svc.sms.mode[transient["phones"][0]] = "transient"
    svc.sms.mode[permanent["phones"][0]] = "permanent"
    transient_case = case_data(transient["customer_id"])
    await case_event(stack, "opened", {**transient_case, "channel": "hotline"})
    await case_event(stack, "opened", {**case_data(permanent["customer_id"]), "channel": "hotline"})
    await wait_for_messages(stack.bootstrap, topics.NOTIFICATIONS_DELIVERIES,
                            event_of_type(FAILED, customer_id=permanent["customer_id"], error="invalid number",
                                          will_retry=False))
    await wait_for_messages(stack.bootstrap, topics.NOTIFICATIONS_DELIVERIES,
                            event_of_type(FAILED, customer_id=transient["customer_id"], will_retry=True))
    tid = message_id(f"ack:{transient_case['case_id']}", transient["customer_id"], "sms")

    async def retried_by_timers():  # attempt 3 and later come from retry timers firing
        doc = await svc.deps.ledger.get(tid)
        return doc and doc["attempts"] >= 3

    await eventually(retried_by_timers, timeout=30)
    svc.sms.mode.pop(transient["phones"][0])  # the provider recovers: the next retry timer sends it
    await eventually(lambda: svc.sms.to(transient["phones"][0]), timeout=30)
    await status_of(svc, tid, "sent")  # the gateway holds the message before the ledger says so
    rows = await _history(svc, transient["customer_id"])
    assert rows[0]["status"] == "sent" and rows[0]["attempts"] >= 2
    assert svc.sms.to(permanent["phones"][0]) == []


async def test_receipts_settle_sent_and_timed_out_messages_once(svc, stack):
    ok = await known(svc, stack)
    lost = await known(svc, stack)
    svc.sms.mode[lost["phones"][0]] = "timeout"
    cases = {}
    for c in (ok, lost):
        cases[c["customer_id"]] = data = case_data(c["customer_id"])
        await case_event(stack, "opened", {**data, "channel": "hotline"})
    ok_id = message_id(f"ack:{cases[ok['customer_id']]['case_id']}", ok["customer_id"], "sms")
    lost_id = message_id(f"ack:{cases[lost['customer_id']]['case_id']}", lost["customer_id"], "sms")
    await status_of(svc, ok_id, "sent")
    await status_of(svc, lost_id, "unconfirmed")
    # The gateways engineer's parser reads the provider's body; here a stand-in reads JSON.
    fake = types.ModuleType("notifications.adapters.sms")
    fake.parse_receipts = lambda body: [Receipt(r["out_id"], r["delivered"], r.get("error"), datetime.now(TZ))
                                        for r in json.loads(body)]
    fake.parse_replies = lambda body: []
    sys.modules["notifications.adapters.sms"] = fake
    try:
        body = json.dumps([{"out_id": ok_id, "delivered": True}, {"out_id": lost_id, "delivered": True}])
        assert (await svc.post("/v1/providers/sms/receipts", content=body)).status_code == 401
        for _ in range(2):  # receipts may come twice
            r = await svc.post("/v1/providers/sms/receipts", content=body, headers={"X-Provider-Token": PROVIDER_TOKEN})
            assert r.status_code == 200
    finally:
        sys.modules.pop("notifications.adapters.sms", None)
    assert (await svc.deps.ledger.get(ok_id))["status"] == "delivered"
    assert (await svc.deps.ledger.get(lost_id))["status"] == "delivered"
    assert len(svc.sms.to(lost["phones"][0])) == 1  # handed over once, never re-sent
    sent = await wait_for_messages(stack.bootstrap, topics.NOTIFICATIONS_DELIVERIES,
                                   event_of_type(SENT, notification_id=lost_id), timeout=10)
    # One event (the relay is at-least-once: a copy carries the same id, which consumers skip).
    assert {s.json()["id"] for s in sent} == {f"{lost_id}:sent"}


async def test_a_scheduled_message_can_be_cancelled_and_a_sent_one_resent(svc, stack):
    c = await known(svc, stack)
    now = svc.deps.clock()
    await produce(stack.bootstrap, topics.SURVEYS_SURVEYS, make_event("crm.surveys.survey.scheduled.v1", {
        "survey_id": "s-cancel", "kind": "annual", "customer_id": c["customer_id"],
        "due_at": (now + timedelta(days=14)).isoformat()}))
    rows = await eventually(lambda: _history(svc, c["customer_id"]), timeout=30)
    assert rows[0]["status"] == "scheduled" and rows[0]["due_at"].startswith((now + timedelta(days=7)).date().isoformat())
    mid = rows[0]["message_id"]
    assert (await svc.post(f"/v1/messages/{mid}/cancel", headers=token(roles=["auditor"]))).status_code == 403
    r = await svc.post(f"/v1/messages/{mid}/cancel", headers=token())
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert (await svc.post(f"/v1/messages/{mid}/cancel", headers=token())).status_code == 409
    await case_event(stack, "opened", {**case_data(c["customer_id"]), "channel": "hotline"})
    await eventually(lambda: svc.sms.to(c["phones"][0]), timeout=30)
    sent_id = svc.sms.to(c["phones"][0])[0].message_id
    await status_of(svc, sent_id, "sent")
    r = await svc.post(f"/v1/messages/{sent_id}/resend", headers=token())
    assert r.status_code == 201 and r.json()["status"] == "sent" and r.json()["message_id"] != sent_id
    assert len(svc.sms.to(c["phones"][0])) == 2
    assert svc.sms.to(c["phones"][0])[1].body == svc.sms.to(c["phones"][0])[0].body


async def test_templates_are_versioned_checked_and_edited_by_region_admins_only(svc, stack):
    path = "/v1/templates/case.acknowledged/zh-CN/sms"
    listed = (await svc.get("/v1/templates", headers=token())).json()["templates"]
    assert {(t["template_id"], t["language"], t["channel"]) for t in listed} >= {
        ("case.acknowledged", "zh-CN", "sms"), ("milestone.delivery", "en", "letter"), ("care.birthday", "en", "email")}
    preview = await svc.post(f"{path}/preview", json={}, headers=token())
    assert preview.status_code == 200 and "〈case_number〉" in preview.json()["body"]
    bad = await svc.put(path, json={"body": "您好{{ customer_name }},编号{{ case_no }}"}, headers=token(roles=["region_admin"]))
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    assert bad.json()["errors"][0]["field"] == "body" and bad.json()["placeholder"] == "case_no"
    assert "case_no" in bad.json()["detail"]
    body = {"body": "{{ customer_name }}您好,投诉{{ case_number }}已受理。[{{ centre_name }}]"}
    assert (await svc.put(path, json=body, headers=token(roles=["supervisor"]))).status_code == 403
    saved = await svc.put(path, json=body, headers=token(roles=["region_admin"], sub="admin-1"))
    assert saved.status_code == 200 and saved.json()["version"] == 2
    versions = (await svc.get(path, headers=token())).json()["versions"]
    assert [v["version"] for v in versions] == [1, 2] and versions[1]["updated_by"] == "admin-1"
    c = await known(svc, stack)
    await case_event(stack, "opened", {**case_data(c["customer_id"]), "channel": "hotline"})
    await eventually(lambda: svc.sms.to(c["phones"][0]), timeout=30)
    assert svc.sms.to(c["phones"][0])[0].body.startswith("王芳您好,投诉SZ-")
    rows = await _history(svc, c["customer_id"])
    assert rows[0]["template_version"] == 2


async def test_bad_input_is_a_problem_naming_the_field(svc, stack):
    r = await svc.post("/v1/customers/nobody/opt-outs", json={"channel": "fax", "source": "agent", "evidence": "x"},
                       headers=token())
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "channel"
    r = await svc.get("/v1/messages/nope", headers=token())
    assert r.status_code == 404 and r.json()["errors"][0]["field"] == "message_id"
    r = await svc.get("/v1/templates/nope/zh-CN/sms", headers=token())
    assert r.status_code == 404


