"""Surveys and cases together on the real stack (a cross-service story, hence here and not
in either service's tests): close a case, find its return visit in the surveys worklist,
answer it with a 2, see the case reopened."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from cases.bootstrap import create_app as create_cases_app
from cases.handlers import case_id_for
from cases.settings import CasesSettings
from crm_contracts import topics
from crm_runtime.auth import issue_token
from crm_runtime.testing import (
    event_of_type,
    eventually,
    make_event,
    produce,
    running_app,
    start_group_at_end,
    unique_suffix,
    wait_for_messages,
)
from surveys.bootstrap import create_app as create_surveys_app
from surveys.settings import SurveysSettings

pytestmark = pytest.mark.stack

JWT_SECRET = "cross-service-tests-secret-of-at-least-32-bytes"


def token() -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_token(JWT_SECRET, sub="agent-1", roles=["agent"],
                                                     regions=["shenzhen"])}


@pytest.fixture(scope="module")
async def surveys(stack):
    suffix = unique_suffix()
    group = f"crm-surveys{suffix}"
    await start_group_at_end(stack.bootstrap, group, [topics.PARTNER_CUSTOMERS, topics.PARTNER_UNITS, topics.PARTNER_SALES,
                                                      topics.PARTNER_REPAIRS, topics.CASES_CASES])
    settings = SurveysSettings(KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap, MONGODB_URL=stack.mongodb_url,
                               CRM_DATABASE_SUFFIX=suffix, CRM_JWT_SECRET=JWT_SECRET,
                               CRM_OUTBOX_POLL_INTERVAL_S=0.1, CRM_TIMER_POLL_INTERVAL_S=0.2,
                               CRM_CONSUMER_GROUP=group)
    app = create_surveys_app(settings)
    async with running_app(app) as client:
        client.app = app
        yield client


async def customer(stack) -> str:
    """A consenting customer from the partner archive."""
    customer_id = f"cust-{uuid.uuid4().hex[:10]}"
    await produce(stack.bootstrap, topics.PARTNER_CUSTOMERS, make_event("crm.partner.customer.upserted.v1", {
        "customer_id": customer_id, "name": "张三", "phones": ["13800138000"],
        "consent": {"sms": True, "email": False, "letter": False}, "units": []}, subject=customer_id))
    return customer_id


async def known(surveys, customer_id: str) -> None:
    async def there():
        doc = await surveys.app.state.ctx.db["customers"].find_one({"_id": customer_id})
        return doc and doc.get("known")

    await eventually(there, timeout=60)


@pytest.fixture(scope="module")
async def cases(stack):
    suffix = unique_suffix()
    group = f"crm-cases{suffix}"
    await start_group_at_end(stack.bootstrap, group, [topics.INTAKE_CONTACTS, topics.SURVEYS_SURVEYS])
    settings = CasesSettings(KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap, MONGODB_URL=stack.mongodb_url,
                             CRM_DATABASE_SUFFIX=suffix, CRM_JWT_SECRET=JWT_SECRET,
                             CRM_OUTBOX_POLL_INTERVAL_S=0.1, CRM_CONSUMER_GROUP=group)
    async with running_app(create_cases_app(settings)) as client:
        yield client


async def step(cases, case_id: str, path: str, body: dict | None = None) -> dict:
    r = await cases.post(f"/v1/cases/{case_id}/{path}", json=body or {}, headers=token())
    assert r.status_code == 200, (path, r.text)
    return r.json()  # type: ignore[no-any-return]


async def test_a_dissatisfied_return_visit_reopens_the_case(stack, surveys, cases):
    cust = await customer(stack)
    await known(surveys, cust)
    contact_id = str(uuid.uuid4())
    contact = {"contact_id": contact_id, "channel": "hotline", "source_ref": f"call-{contact_id[:8]}",
               "region": "shenzhen", "project": "碧水湾", "building": "3", "unit": "1201", "customer_id": cust,
               "customer_match": "exact", "kind_hint": "complaint", "subject": "卫生间漏水",
               "body": "卫生间漏水一个月了，请尽快处理。", "attachments": [], "received_at": datetime.now(UTC).isoformat()}
    await produce(stack.bootstrap, topics.INTAKE_CONTACTS,
                  make_event("crm.intake.contact.received.v1", contact, subject=contact_id))
    case_id = case_id_for(contact_id)

    async def opened():
        r = await cases.get(f"/v1/cases/{case_id}", headers=token())
        return r.json() if r.status_code == 200 else None

    # Long timeouts: in a whole-suite run each service first works through the session's backlog.
    case = await eventually(opened, timeout=120)
    await step(cases, case_id, "validate", {"outcome": "valid", "explanation": "已受理"})
    await step(cases, case_id, "classify", {"severity": case["severity"], "category": "engineering_quality"})
    await step(cases, case_id, "assess", {"nature": "工程质量", "influence": "单户"})
    await step(cases, case_id, "start-investigation")
    await step(cases, case_id, "findings", {"responsible_department": "engineering", "root_cause": "防水层破损",
                                            "written_findings": "现场确认防水层破损"})
    await step(cases, case_id, "start-handling", {"plan": "重做防水"})
    await step(cases, case_id, "progress", {"message_to_customer": "师傅明天上门"})
    await step(cases, case_id, "resolve", {"summary": "防水已重做"})
    await step(cases, case_id, "customer-confirmation", {"accepted": True})
    await step(cases, case_id, "department-approval", {"note": "同意"})
    closed = await step(cases, case_id, "close")
    assert closed["status"] == "closed"

    async def in_worklist():
        r = await surveys.get("/v1/worklist", params={"region": "shenzhen", "limit": 200}, headers=token())
        return next((i for i in r.json()["items"] if i["case_id"] == case_id), None)

    visit = await eventually(in_worklist, timeout=120)
    assert visit["kind"] == "case_return_visit" and visit["urgency"] in ("open", "due_today")
    r = await surveys.post(f"/v1/surveys/{visit['survey_id']}/answers", headers=token(), json={
        "mode": "phone", "answers": {"overall": 2, "timeliness": 2, "attitude": 3, "resolved": "no"}})
    assert r.status_code == 200, r.text
    [reopened] = await wait_for_messages(stack.bootstrap, topics.CASES_CASES,
                                         event_of_type("crm.cases.case.reopened.v1", case_id=case_id), timeout=120)
    assert "dissatisfied" in reopened.json()["data"]["reason"]
    after = await cases.get(f"/v1/cases/{case_id}", headers=token())
    assert after.json()["status"] not in ("closed", "lesson_recorded")
