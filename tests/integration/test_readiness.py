"""A service is ready only while Kafka and its database answer."""

from __future__ import annotations

import pytest
from crm_runtime.testing import eventually, running_app, unique_suffix
from reporting.bootstrap import Settings, create_app

pytestmark = pytest.mark.stack


async def test_ready_turns_unready_when_kafka_stops_and_ready_when_it_returns(stack):
    if not stack.can_restart_kafka:
        pytest.skip("only the embedded stack can be stopped by the test")
    settings = Settings(KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap, MONGODB_URL=stack.mongodb_url,
                        CRM_DATABASE_SUFFIX=unique_suffix())
    async with running_app(create_app(settings)) as client:
        assert (await client.get("/health/live")).status_code == 200

        async def status() -> int:
            return (await client.get("/health/ready")).status_code

        await eventually(lambda: _is(status, 200), timeout=60)
        stack.stop_kafka()
        try:
            await eventually(lambda: _is(status, 503), timeout=60)
            body = (await client.get("/health/ready")).json()
            assert body["checks"] == {"kafka": "down", "database": "ok"}
        finally:
            stack.start_kafka()
        await eventually(lambda: _is(status, 200), timeout=90)
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200 and "http_requests_total" in metrics.text


async def _is(status, expected: int) -> bool:
    return await status() == expected
