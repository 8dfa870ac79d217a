from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from crm_contracts import topics
from crm_runtime.auth import issue_token
from crm_runtime.testing import event_of_type, eventually, make_event, produce, running_app, unique_suffix
from crm_runtime.testing import wait_for_messages as _wait
from surveys.bootstrap import create_app
from surveys.settings import SurveysSettings

JWT_SECRET = "surveys-tests-secret-of-at-least-32-bytes"
LINK_SECRET = "surveys-tests-link-secret"
SURVEY = "crm.surveys.survey."


class Clock:
    """The service's clock: real time plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def move(self, delta: timedelta) -> None:
        self.offset += delta


def token(roles=("agent",), regions=("shenzhen",), sub="agent-1") -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_token(JWT_SECRET, sub=sub, roles=list(roles), regions=list(regions))}


def surveys_settings(stack, suffix: str) -> SurveysSettings:
    return SurveysSettings(
        KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap, MONGODB_URL=stack.mongodb_url, CRM_DATABASE_SUFFIX=suffix,
        CRM_JWT_SECRET=JWT_SECRET, CRM_SURVEYS_LINK_SECRET=LINK_SECRET, CRM_OUTBOX_POLL_INTERVAL_S=0.1,
        CRM_TIMER_POLL_INTERVAL_S=0.2, CRM_CONSUMER_GROUP=f"crm-surveys{suffix}",
    )


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
async def surveys(stack, clock):
    suffix = unique_suffix()
    app = create_app(surveys_settings(stack, suffix), clock=clock)
    async with running_app(app) as client:
        client.app = app
        yield client


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def send(stack, topic: str, type_: str, data: dict[str, Any], *, region: str = "shenzhen",
               subject: str | None = None, id: str | None = None):
    event = make_event(type_, data, region=region, subject=subject or next(iter(data.values())), id=id)
    await produce(stack.bootstrap, topic, event)
    return event


async def customer(stack, *, consent: bool = True, units=(), region: str = "shenzhen", customer_id=None) -> str:
    customer_id = customer_id or uid("cust")
    await send(stack, topics.PARTNER_CUSTOMERS, "crm.partner.customer.upserted.v1", {
        "customer_id": customer_id, "name": "张三", "phones": ["13800138000"],
        "consent": {"sms": consent, "email": False, "letter": False},
        "units": [{"project": p, "building": b, "unit": u} for p, b, u in units]}, region=region)
    return customer_id


async def known(surveys, customer_id: str) -> None:
    """Wait until the surveys directory has the customer (the batch consumer is async)."""
    app = surveys.app

    async def there():
        doc = await app.state.ctx.db["customers"].find_one({"_id": customer_id})
        return doc and doc.get("known")

    await eventually(there, timeout=60)


async def survey_events(stack, kind_suffix: str, count: int = 1, timeout: float = 30, **fields) -> list:
    return await _wait(stack.bootstrap, topics.SURVEYS_SURVEYS, event_of_type(f"{SURVEY}{kind_suffix}", **fields),
                       count=count, timeout=timeout)


async def customer_surveys(surveys, customer_id: str, *, count: int = 1, timeout: float = 60,
                           regions=("shenzhen",)) -> list[dict]:
    async def fetch():
        r = await surveys.get(f"/v1/customers/{customer_id}/surveys", headers=token(regions=regions))
        items = r.json()["items"] if r.status_code == 200 else []
        return items if len(items) >= count else None

    return await eventually(fetch, timeout=timeout)  # type: ignore[no-any-return]


def iso(at: datetime) -> str:
    return at.isoformat()


__all__ = ["running_app"]
