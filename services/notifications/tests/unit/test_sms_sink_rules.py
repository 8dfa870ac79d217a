"""The local SMS provider's own rules, in process: replays refused, the token bucket refills."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from crm_devstack.sinks.sms import SmsSinkConfig, TokenBucket, create_app
from notifications.adapters.gateways import OutboundMessage
from notifications.adapters.sms import ProviderConfig, send_sms_params

PROVIDER = ProviderConfig(name="sink", url="http://sink", access_key_id="test", access_key_secret="test-secret")
MESSAGE = OutboundMessage(message_id="ntf-replay-1", channel="sms", region="shenzhen", language="zh-CN",
                          to="13712349999", template_code="case.acknowledged", params={"n": "1"}, subject="", body="")


def sink_client(tmp_path) -> httpx.AsyncClient:
    config = SmsSinkConfig(data_dir=tmp_path, access_keys={"test": "test-secret"}, receipts_url=None,
                           replies_url=None)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(config)), base_url="http://sink")


async def test_a_replayed_request_is_refused_and_sends_nothing_twice(tmp_path):
    params = send_sms_params(PROVIDER, MESSAGE, now=datetime.now(UTC), nonce="nonce-1")
    async with sink_client(tmp_path) as client:
        first = (await client.post("/", data=params)).json()
        replay = await client.post("/", data=params)
        stored = (await client.get("/messages", params={"phone": "13712349999"})).json()["messages"]
    assert first["Code"] == "OK"
    assert replay.status_code == 400 and replay.json()["Code"] == "SignatureNonceUsed"
    assert len(stored) == 1


async def test_a_stale_request_is_refused(tmp_path):
    params = send_sms_params(PROVIDER, MESSAGE, now=datetime.now(UTC) - timedelta(minutes=20), nonce="nonce-2")
    async with sink_client(tmp_path) as client:
        answer = await client.post("/", data=params)
    assert answer.status_code == 400 and answer.json()["Code"] == "InvalidTimeStamp.Expired"


def test_the_token_bucket_allows_its_rate_and_refills():
    now = [0.0]
    bucket = TokenBucket(rate_per_s=2, clock=lambda: now[0])
    assert [bucket.take(1) for _ in range(3)] == [True, True, False]  # a burst of the rate, then no more
    now[0] += 0.5
    assert bucket.take(1) and not bucket.take(1)  # half a second brings one back
    now[0] += 10
    assert not bucket.take(3)  # never more than a second's worth at once
    assert bucket.take(2)
