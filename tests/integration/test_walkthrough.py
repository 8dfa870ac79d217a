"""The walkthrough of the README, through the real services over HTTP: a partner record of
the customer, a complaint recorded in intake, the case opened by cases, a progress report
posted in cases, and both messages read back from the local SMS provider that `make run`
starts, sent there by notifications' real SMS client."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cases.bootstrap import create_app as cases_app
from cases.settings import CasesSettings
from crm_contracts import topics
from crm_devstack.servers import free_port
from crm_devstack.sinks.sms import SmsSinkConfig
from crm_devstack.sinks.sms import create_app as sms_sink
from crm_runtime.auth import issue_token
from crm_runtime.testing import serving, start_group_at_end, unique_suffix
from intake.bootstrap import create_app as intake_app
from intake.settings import IntakeSettings
from notifications.bootstrap import create_app as notifications_app
from notifications.settings import NotificationsSettings

pytestmark = pytest.mark.stack
SECRET = "walkthrough-tests-secret-of-32-bytes!!"


async def eventually(check: Callable[[], Any], timeout: float = 60) -> Any:
    for _ in range(int(timeout / 0.25)):
        if found := await check():
            return found
        await asyncio.sleep(0.25)
    raise AssertionError("not reached in time")


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_token(SECRET, sub=f"{role}-1", roles=[role], regions=["shenzhen"])}


async def test_a_complaint_and_its_progress_reach_the_customer_in_the_sms_sink(stack, tmp_path):
    suffix = unique_suffix()
    common = {"KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap, "MONGODB_URL": stack.mongodb_url,
              "CRM_DATABASE_SUFFIX": suffix, "CRM_JWT_SECRET": SECRET, "CRM_OUTBOX_POLL_INTERVAL_S": 0.1,
              "CRM_TIMER_POLL_INTERVAL_S": 0.5}
    for service in ("intake", "cases", "notifications"):
        await start_group_at_end(stack.bootstrap, f"crm-{service}{suffix}", topics.ALL_TOPICS)
    notifications_port = free_port()
    sink = sms_sink(SmsSinkConfig(
        data_dir=tmp_path, rate_per_s=100, receipt_delay_s=0.1,
        receipts_url=f"http://127.0.0.1:{notifications_port}/v1/providers/sms/receipts",
        replies_url=f"http://127.0.0.1:{notifications_port}/v1/providers/sms/replies"))
    async with serving(sink) as sink_url:
        intake = intake_app(IntakeSettings(**common, CRM_CONSUMER_GROUP=f"crm-intake{suffix}", CRM_INTAKE_SMTP_PORT=0))
        cases = cases_app(CasesSettings(**common, CRM_CONSUMER_GROUP=f"crm-cases{suffix}"))
        # The service's own SMS client and defaults, pointed at the sink; the send window is
        # opened all day so the test does not depend on the hour it runs at.
        notifications = notifications_app(NotificationsSettings(
            **common, CRM_CONSUMER_GROUP=f"crm-notifications{suffix}", CRM_NOTIFICATIONS_SMS_URL=sink_url,
            CRM_NOTIFICATIONS_SEND_WINDOW="00:00-23:59", CRM_NOTIFICATIONS_LETTERS_DIR=str(tmp_path / "letters")))
        async with serving(intake) as intake_url, serving(cases) as cases_url, \
                serving(notifications, notifications_port) as notifications_url, httpx.AsyncClient() as http:
            customer_id, phone = f"c-{uuid.uuid4().hex[:8]}", "139" + str(uuid.uuid4().int)[:8]
            record = {"specversion": "1.0", "id": f"{customer_id}-v1", "type": "crm.partner.customer.upserted.v1",
                      "source": "/partner/crm", "subject": customer_id, "region": "shenzhen",
                      "time": "2026-12-01T09:00:00+08:00", "datacontenttype": "application/json",
                      "data": {"customer_id": customer_id, "name": "李娜", "phones": [phone],
                               "preferred_language": "zh-CN", "consent": {"sms": True, "email": True, "letter": False},
                               "units": [{"project": "翠湖苑", "building": "6", "unit": "1203"}]}}
            r = await http.post(f"{intake_url}/v1/partner-events", json=record, headers=bearer("partner"))
            assert r.status_code == 202, r.text
            # Both directories read the record through their own consumers: intake must know
            # the caller (or the contact gets a provisional id and no acknowledgement goes out).
            deps = notifications.state.ctx.app_deps
            await eventually(lambda: deps.directory.get(customer_id))

            async def intake_knows_the_caller() -> bool:
                r = await http.get(f"{intake_url}/v1/customers/lookup", headers=bearer("agent"),
                                   params={"phone": phone, "region": "shenzhen"})
                return r.status_code == 200 and r.json()["customer_id"] == customer_id
            await eventually(intake_knows_the_caller)

            r = await http.post(f"{intake_url}/v1/contacts", headers=bearer("agent"), json={
                "channel": "hotline", "region": "shenzhen", "source_ref": f"call-{uuid.uuid4().hex[:8]}",
                "subject": "投诉物业服务", "body": "我要投诉：小区门禁坏了一个月物业一直不处理，非常不满",
                "customer": {"name": "李娜", "phone": phone}, "project": "翠湖苑", "building": "6", "unit": "1203"})
            assert r.status_code == 202, r.text

            async def sms(count: int) -> list[dict[str, Any]] | None:
                found = (await http.get(f"{sink_url}/messages", params={"phone": phone})).json()["messages"]
                return found if len(found) >= count else None
            [ack] = await eventually(lambda: sms(1), timeout=90)
            assert ack["template_code"] == "case.acknowledged"
            case_number = ack["template_param"]["case_number"]

            r = await http.post(f"{cases_url}/v1/cases/{case_number}/progress", headers=bearer("agent"),
                                json={"message_to_customer": "维修师傅明天上午10点上门更换门禁"})
            assert r.status_code == 200, r.text
            _, progress = await eventually(lambda: sms(2), timeout=90)
            assert progress["template_code"] == "case.progress"
            assert progress["template_param"] == {"customer_name": "李娜", "centre_name": "深圳客户中心",
                                                  "case_number": case_number,
                                                  "message": "维修师傅明天上午10点上门更换门禁"}

            # The sink's receipts come back: the staff API shows both delivered.
            async def delivered() -> list[dict[str, Any]] | None:
                rows = (await http.get(f"{notifications_url}/v1/customers/{customer_id}/messages",
                                       headers=bearer("agent"))).json()["messages"]
                return rows if len(rows) == 2 and all(m["status"] == "delivered" for m in rows) else None
            rows = await eventually(delivered, timeout=60)
            assert {m["template_id"] for m in rows} == {"case.acknowledged", "case.progress"}
