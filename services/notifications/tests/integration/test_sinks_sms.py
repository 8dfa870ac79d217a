"""SmsGateway against the local SMS provider sink, both over real HTTP: sends read back,
limits answered with the provider's code, receipts and replies posted to a callback."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from crm_devstack.servers import free_port, wait_for_port
from crm_devstack.sinks.sms import SmsSinkConfig, create_app
from crm_runtime.testing import serving
from fastapi import FastAPI, Request
from notifications.adapters.gateways import OutboundMessage, TimeoutUnknown
from notifications.adapters.sms import SmsGateway, parse_receipts, parse_replies

ACCESS_KEY = "test:test-secret"
SINK_KEYS = {"test": "test-secret"}
TOKEN = "test-provider-token"


async def eventually(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Wait for an asynchronous effect (a receipt); the deadline only stops a hung test."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "the expected callback never came"
        await asyncio.sleep(0.05)
    return value


class Callbacks:
    """Stands in for notifications' provider endpoints: records every post."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, bytes, str | None]] = []
        self.app = FastAPI()

        @self.app.post("/v1/providers/sms/{kind}")
        async def receive(kind: str, request: Request) -> dict[str, Any]:
            self.posts.append((kind, await request.body(), request.headers.get("X-Provider-Token")))
            return {"code": 0, "msg": "接收成功"}

    def receipts_for(self, out_id: str) -> list[tuple[bytes, str | None]]:
        return [(body, token) for kind, body, token in self.posts
                if kind == "receipts" and any(r.out_id == out_id for r in parse_receipts(body))]


@pytest.fixture(scope="module")
async def callbacks() -> AsyncIterator[tuple[Callbacks, str]]:
    receiver = Callbacks()
    async with serving(receiver.app) as url:
        yield receiver, url


@pytest.fixture(scope="module")
async def sink_url(callbacks, tmp_path_factory) -> AsyncIterator[str]:
    _, callback_url = callbacks
    config = SmsSinkConfig(
        data_dir=tmp_path_factory.mktemp("sms-sink"), access_keys=SINK_KEYS, rate_per_s=1000, daily_limit_per_number=50,
        receipt_delay_s=0.05, receipt_copies=2, provider_token=TOKEN, callback_retries_s=(0.2,),
        receipts_url=f"{callback_url}/v1/providers/sms/receipts",
        replies_url=f"{callback_url}/v1/providers/sms/replies")
    async with serving(create_app(config)) as url:
        yield url


@pytest.fixture
async def gateway(sink_url) -> AsyncIterator[SmsGateway]:
    gateway = SmsGateway.single(sink_url, ACCESS_KEY, "深圳客户中心")
    yield gateway
    await gateway.close()


def sms(message_id: str, to: str, template: str = "case.acknowledged", **params: str) -> OutboundMessage:
    return OutboundMessage(message_id=message_id, channel="sms", region="shenzhen", language="zh-CN", to=to,
                           template_code=template, params=params or {"case_number": "SZ-2026-000123"},
                           subject="", body="")


async def sent_to(sink_url: str, phone: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"{sink_url}/messages", params={"phone": phone})).json()["messages"]


async def test_a_message_sent_is_read_back_from_the_sink(gateway, sink_url):
    result = await gateway.send(sms("ntf-read-1", "13712340001", 项目="翡翠湾"))
    assert result.accepted and result.provider_ref
    (stored,) = await sent_to(sink_url, "13712340001")
    assert stored["out_id"] == "ntf-read-1"
    assert stored["biz_id"] == result.provider_ref
    assert stored["sign_name"] == "深圳客户中心"
    assert stored["template_code"] == "case.acknowledged"
    assert stored["template_param"] == {"项目": "翡翠湾"}


async def test_receipts_come_twice_to_the_callback_with_our_out_id(gateway, callbacks):
    receiver, _ = callbacks
    assert (await gateway.send(sms("ntf-receipt-1", "13712340002"))).accepted
    posts = await eventually(lambda: len(receiver.receipts_for("ntf-receipt-1")) >= 2 and
                             receiver.receipts_for("ntf-receipt-1"))
    for body, token in posts:
        assert token == TOKEN
        (receipt,) = parse_receipts(body)
        assert (receipt.out_id, receipt.delivered, receipt.error) == ("ntf-receipt-1", True, None)


async def test_an_undeliverable_number_gets_a_failed_receipt(gateway, callbacks):
    receiver, _ = callbacks
    assert (await gateway.send(sms("ntf-undeliv-1", "13712340000"))).accepted  # accepted, then not delivered
    body, _ = (await eventually(lambda: receiver.receipts_for("ntf-undeliv-1")))[0]
    (receipt,) = parse_receipts(body)
    assert not receipt.delivered and receipt.error == "UNDELIV"


async def test_a_broadcast_batch_keeps_one_ledger_id_per_number(gateway, sink_url, callbacks):
    receiver, _ = callbacks
    messages = [sms(f"ntf-batch-{i}", f"1371234010{i}", "milestone.topped_out", 项目="翡翠湾") for i in range(3)]
    results = await gateway.send_batch(messages)
    assert all(not isinstance(r, TimeoutUnknown) and r.accepted for r in results)
    for i in range(3):
        (stored,) = await sent_to(sink_url, f"1371234010{i}")
        assert stored["out_id"] == f"ntf-batch-{i}" and stored["action"] == "SendBatchSms"
        await eventually(lambda i=i: receiver.receipts_for(f"ntf-batch-{i}"))


async def test_one_illegal_number_in_a_batch_fails_alone(gateway, sink_url):
    messages = [sms("ntf-mixed-0", "13712340200"), sms("ntf-mixed-1", "12345"), sms("ntf-mixed-2", "13712340202")]
    good, bad, other = await gateway.send_batch(messages)
    assert not isinstance(good, TimeoutUnknown) and good.accepted
    assert not isinstance(other, TimeoutUnknown) and other.accepted
    assert not isinstance(bad, TimeoutUnknown)
    assert not bad.accepted and bad.permanent and "isv.MOBILE_NUMBER_ILLEGAL" in (bad.error or "")
    assert [m["out_id"] for m in await sent_to(sink_url, "13712340200")] == ["ntf-mixed-0"]


async def test_a_customer_reply_td_is_posted_to_the_replies_callback(sink_url, callbacks):
    receiver, _ = callbacks
    async with httpx.AsyncClient() as client:
        answer = await client.post(f"{sink_url}/simulate/reply", json={"phone": "13712340003", "content": "TD"})
    assert answer.json() == {"posted": True, "status": 200}
    bodies = [(body, token) for kind, body, token in receiver.posts if kind == "replies"]
    replies = [(reply, token) for body, token in bodies for reply in parse_replies(body)]
    assert any(r.phone == "13712340003" and r.content == "TD" and t == TOKEN for r, t in replies)


async def test_a_wrong_access_key_is_refused_and_nothing_is_sent(sink_url):
    gateway = SmsGateway.single(sink_url, "test:not-the-secret")
    try:
        result = await gateway.send(sms("ntf-badkey-1", "13712340004"))
    finally:
        await gateway.close()
    assert not result.accepted and not result.permanent  # our configuration, not the customer's number
    assert "SignatureDoesNotMatch" in (result.error or "")
    assert await sent_to(sink_url, "13712340004") == []


def in_process(tmp_path, **settings: Any) -> httpx.AsyncClient:
    """A sink of its own settings, reached in process (no receipts posted)."""
    config = SmsSinkConfig(data_dir=tmp_path, receipts_url=None, replies_url=None, **settings)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(config)), base_url="http://sink")


def local_sink(tmp_path, **settings: Any) -> SmsGateway:
    return SmsGateway.single("http://sink", ACCESS_KEY, client=in_process(tmp_path, access_keys=SINK_KEYS, **settings))


async def test_the_services_default_settings_fit_the_sinks_defaults(tmp_path):
    # NotificationsSettings' development defaults, as the channel factory passes them.
    settings = SimpleNamespace(sms_url="http://sink", sms_access_key="dev-sms-access-key", sms_sign_name="客户中心")
    gateway = SmsGateway(settings, client=in_process(tmp_path))
    try:
        assert (await gateway.send(sms("ntf-defaults-1", "13712340012"))).accepted
    finally:
        await gateway.close()


async def test_past_the_rate_the_provider_answers_limit_control(tmp_path):
    gateway = local_sink(tmp_path, rate_per_s=0.001)  # one message, then none for a long while
    first = await gateway.send(sms("ntf-rate-1", "13712340005"))
    second = await gateway.send(sms("ntf-rate-2", "13712340006"))
    await gateway.close()
    assert first.accepted
    assert not second.accepted and not second.permanent
    assert (second.error or "").startswith("isv.BUSINESS_LIMIT_CONTROL")


async def test_past_the_daily_limit_of_a_number_it_answers_limit_control_even_after_a_restart(tmp_path):
    def one_day() -> datetime:  # the limit is per Beijing day: the test must not cross midnight there
        return datetime(2026, 12, 3, 23, 59, 59, tzinfo=ZoneInfo("Asia/Shanghai"))
    gateway = local_sink(tmp_path, rate_per_s=1000, daily_limit_per_number=2, clock=one_day)
    results = [await gateway.send(sms(f"ntf-day-{i}", "13712340007")) for i in range(3)]
    other_number = await gateway.send(sms("ntf-day-other", "13712340008"))
    await gateway.close()
    assert [r.accepted for r in results] == [True, True, False]
    assert (results[2].error or "").startswith("isv.BUSINESS_LIMIT_CONTROL") and not results[2].permanent
    assert other_number.accepted
    restarted = local_sink(tmp_path, rate_per_s=1000, daily_limit_per_number=2, clock=one_day)
    again = await restarted.send(sms("ntf-day-3", "13712340007"))
    await restarted.close()
    assert not again.accepted and (again.error or "").startswith("isv.BUSINESS_LIMIT_CONTROL")


async def test_a_provider_that_never_answers_gives_timeout_unknown():
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)  # takes the request, answers nothing
        await asyncio.sleep(30)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    gateway = SmsGateway.single(f"http://127.0.0.1:{port}", ACCESS_KEY, timeout_s=0.3)
    try:
        with pytest.raises(TimeoutUnknown):
            await gateway.send(sms("ntf-timeout-1", "13712340009"))
    finally:
        await gateway.close()
        server.close()


async def test_after_a_timeout_the_receipt_still_tells_what_happened(callbacks, tmp_path):
    receiver, callback_url = callbacks
    config = SmsSinkConfig(data_dir=tmp_path, access_keys=SINK_KEYS, answer_delay_s=2, receipt_delay_s=0.05,
                           receipt_copies=1, provider_token=TOKEN,
                           receipts_url=f"{callback_url}/v1/providers/sms/receipts", replies_url=None)
    async with serving(create_app(config)) as slow_url:
        gateway = SmsGateway.single(slow_url, ACCESS_KEY, timeout_s=0.5)
        try:
            with pytest.raises(TimeoutUnknown):
                await gateway.send(sms("ntf-slow-1", "13712340013"))
        finally:
            await gateway.close()
        # No re-send: the provider's receipt settles it.
        body, _ = (await eventually(lambda: receiver.receipts_for("ntf-slow-1")))[0]
    (receipt,) = parse_receipts(body)
    assert receipt.out_id == "ntf-slow-1" and receipt.delivered


async def test_a_provider_that_is_down_is_a_transient_failure_not_an_unknown():
    gateway = SmsGateway.single(f"http://127.0.0.1:{free_port()}", ACCESS_KEY, timeout_s=2)
    try:
        result = await gateway.send(sms("ntf-down-1", "13712340010"))
    finally:
        await gateway.close()
    assert not result.accepted and not result.permanent and (result.error or "").startswith("connect")


async def test_the_sms_sink_process_of_make_run_keeps_what_it_sent_in_a_file(tmp_path):
    port = free_port()
    env = {**os.environ, "CRM_SMS_SINK_PORT": str(port), "CRM_SMS_SINK_DIR": str(tmp_path),
           "CRM_SMS_SINK_RECEIPTS_URL": "", "CRM_SMS_SINK_REPLIES_URL": "", "CRM_SMS_SINK_ACCESS_KEYS": "test:test-secret"}
    cli = Path(sys.executable).with_name("crm-stack")
    proc = subprocess.Popen([str(cli), "sms-sink"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gateway = SmsGateway.single(f"http://127.0.0.1:{port}", ACCESS_KEY)
    try:
        await asyncio.to_thread(wait_for_port, "127.0.0.1", port, timeout=60, proc=proc)
        assert (await gateway.send(sms("ntf-proc-1", "13712340011"))).accepted
        (stored,) = await sent_to(f"http://127.0.0.1:{port}", "13712340011")
        lines = (tmp_path / "messages.jsonl").read_text(encoding="utf-8").splitlines()
        assert [json.loads(line)["out_id"] for line in lines] == ["ntf-proc-1"] == [stored["out_id"]]
    finally:
        await gateway.close()
        proc.terminate()
        proc.wait(timeout=30)
