from __future__ import annotations

import time as _time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from crm_contracts import topics
from crm_runtime.auth import issue_token
from crm_runtime.testing import make_event, produce
from crm_runtime.testing import start_group_at_end as _start_group_at_end
from notifications.adapters.gateways import OutboundMessage, SendResult, TimeoutUnknown
from notifications.settings import NotificationsSettings

JWT_SECRET = "notifications-tests-secret-of-32-bytes!"
PROVIDER_TOKEN = "test-provider-token"
TZ = ZoneInfo("Asia/Shanghai")


def token(roles=("agent",), regions=("shenzhen",), sub="agent-1") -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_token(JWT_SECRET, sub=sub, roles=list(roles), regions=list(regions))}


def settings_for(stack, suffix: str, **extra) -> NotificationsSettings:
    return NotificationsSettings(
        KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap, MONGODB_URL=stack.mongodb_url, CRM_DATABASE_SUFFIX=suffix,
        CRM_CONSUMER_GROUP=f"crm-notifications{suffix}", CRM_JWT_SECRET=JWT_SECRET,
        CRM_OUTBOX_POLL_INTERVAL_S=0.1, CRM_TIMER_POLL_INTERVAL_S=0.2,
        CRM_NOTIFICATIONS_PROVIDER_TOKEN=PROVIDER_TOKEN, CRM_NOTIFICATIONS_SMS_RATE_PER_S=200,
        CRM_NOTIFICATIONS_RETRY_BACKOFF_S=0.5, CRM_NOTIFICATIONS_RETRY_BACKOFF_MAX_S=2,
        CRM_NOTIFICATIONS_MAX_ATTEMPTS=50, **extra)


CONSUMED = (topics.PARTNER_CUSTOMERS, topics.PARTNER_UNITS, topics.PARTNER_SALES, topics.PARTNER_PROJECTS,
            topics.CASES_CASES, topics.SURVEYS_SURVEYS)


async def start_group_at_end(bootstrap: str, group: str) -> None:
    await _start_group_at_end(bootstrap, group, CONSUMED)


class FakeClock:
    """Local time chosen by the test; it runs on with real time and jumps when told."""

    def __init__(self, start: datetime):
        self.start = start
        self.began = _time.monotonic()
        self.jumped = timedelta()

    def __call__(self) -> datetime:
        return self.start + self.jumped + timedelta(seconds=_time.monotonic() - self.began)

    def jump_to(self, at: datetime) -> None:
        self.jumped += at - self()


@dataclass
class RecordingGateway:
    """A provider that records what it was handed; `mode` makes it refuse or time out."""

    channel: str
    sent: list[OutboundMessage] = field(default_factory=list)
    mode: dict[str, str] = field(default_factory=dict)  # `to` -> transient | permanent | timeout

    async def send(self, message: OutboundMessage) -> SendResult:
        mode = self.mode.get(message.to)
        if mode == "timeout":
            self.sent.append(message)  # the provider took it, but we never heard
            raise TimeoutUnknown(message.message_id)
        if mode == "transient":
            return SendResult(accepted=False, error="rate limited by the provider")
        if mode == "permanent":
            return SendResult(accepted=False, permanent=True, error="invalid number")
        self.sent.append(message)
        return SendResult(accepted=True, provider_ref=f"biz-{len(self.sent)}")

    async def close(self) -> None:
        return None

    def to(self, address: str) -> list[OutboundMessage]:
        return [m for m in self.sent if m.to == address]


async def fresh_app(stack, clock: FakeClock, **extra):
    """The service on its own database and consumer group, reading only new events, with
    recording gateways and the test's clock."""
    from crm_runtime.testing import unique_suffix
    from notifications.bootstrap import create_app

    suffix = unique_suffix()
    await start_group_at_end(stack.bootstrap, f"crm-notifications{suffix}")
    app = create_app(settings_for(stack, suffix, **extra))
    return app, install(app, clock)


def install(app, clock: FakeClock) -> dict[str, RecordingGateway]:
    """Recording gateways and the test's clock, before the app starts."""
    deps = app.state.ctx.app_deps
    gateways = {ch: RecordingGateway(ch) for ch in ("sms", "email", "letter")}
    deps.gateways.update(gateways)
    deps.clock = clock
    app.state.ctx.timers.clock = clock
    return gateways


def phone() -> str:
    return "139" + str(uuid.uuid4().int)[:8]


def customer(region="shenzhen", *, units=(), consent=None, language="zh-CN", birthday=None, **over) -> dict:
    data = {"customer_id": f"cust-{uuid.uuid4().hex[:10]}", "name": "王芳", "phones": [phone()],
            "email": f"{uuid.uuid4().hex[:8]}@example.cn", "preferred_language": language,
            "consent": consent or {"sms": True, "email": True, "letter": True},
            "units": [{"project": p, "building": b, "unit": u} for p, b, u in units]}
    if birthday:
        data["birthday"] = birthday
    data.update(over)
    return data


async def upsert(stack, data: dict, region="shenzhen") -> None:
    await produce(stack.bootstrap, topics.PARTNER_CUSTOMERS, make_event(
        "crm.partner.customer.upserted.v1", data, region=region, subject=data["customer_id"]))


def case_data(customer_id: str | None, **over) -> dict:
    case_id = over.pop("case_id", f"case-{uuid.uuid4().hex[:10]}")
    data = {"case_id": case_id, "case_number": f"SZ-2026-{uuid.uuid4().int % 1000000:06d}", "region": "shenzhen",
            "customer_id": customer_id, "status": "received", "occurred_at": datetime.now(TZ).isoformat()}
    data.update(over)
    return data


async def case_event(stack, kind: str, data: dict, *, id: str | None = None):
    event = make_event(f"crm.cases.case.{kind}.v1" if "." not in kind else kind, data, region=data["region"],
                       subject=data.get("case_id") or data.get("incident_id"), id=id)
    await produce(stack.bootstrap, topics.CASES_CASES, event)
    return event
