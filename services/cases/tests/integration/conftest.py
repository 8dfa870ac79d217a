from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from cases.bootstrap import create_app
from cases.settings import CasesSettings
from crm_contracts import topics
from crm_runtime.auth import issue_token
from crm_runtime.testing import make_event, produce, running_app, unique_suffix

JWT_SECRET = "cases-tests-secret-of-at-least-32-bytes"
# Tianjin's first reply is due after 2 s of calendar time, so a breach happens in a test.
SLA = {"regions": {"tianjin": {"general": {"first_reply": "0.0006h"}}}}


def token(roles=("agent",), regions=("shenzhen",), sub="agent-1") -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_token(JWT_SECRET, sub=sub, roles=list(roles),
                                                      regions=list(regions))}


def cases_settings(stack, suffix: str) -> CasesSettings:
    return CasesSettings(
        KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap, MONGODB_URL=stack.mongodb_url, CRM_DATABASE_SUFFIX=suffix,
        CRM_JWT_SECRET=JWT_SECRET, CRM_OUTBOX_POLL_INTERVAL_S=0.1, CRM_TIMER_POLL_INTERVAL_S=0.2,
        CRM_CASES_SLA=SLA,
    )


@pytest.fixture(scope="module")
def suffix() -> str:
    return unique_suffix()


@pytest.fixture(scope="module")
async def cases(stack, suffix):
    app = create_app(cases_settings(stack, suffix))
    async with running_app(app) as client:
        client.app = app
        yield client


def contact_data(**overrides) -> dict:
    contact_id = overrides.pop("contact_id", str(uuid.uuid4()))
    data = {
        "contact_id": contact_id, "channel": "hotline", "source_ref": f"call-{contact_id[:8]}",
        "region": "shenzhen", "project": f"碧水湾{uuid.uuid4().hex[:6]}", "building": "3", "unit": "1201",
        "customer_id": f"cust-{uuid.uuid4().hex[:8]}", "customer_match": "exact", "kind_hint": "complaint",
        "subject": "卫生间漏水没人管", "body": "我家卫生间漏水一个月了，报修三次没人来，非常不满意，要求尽快处理。",
        "attachments": [], "received_at": datetime.now(UTC).isoformat(),
    }
    data.update(overrides)
    return data


async def send_contact(stack, **overrides) -> dict:
    data = contact_data(**overrides)
    event = make_event("crm.intake.contact.received.v1", data, region=data["region"], subject=data["contact_id"])
    await produce(stack.bootstrap, topics.INTAKE_CONTACTS, event)
    return {"event": event, **data}
