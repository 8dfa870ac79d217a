"""A service asked to stop stops, against the real servers, even when its Kafka consumers
hang while leaving their group."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from crm_runtime import app as app_module
from crm_runtime.app import Wiring, create_service_app
from crm_runtime.mongo import create_client
from crm_runtime.settings import ServiceSettings
from crm_runtime.testing import running_app

pytestmark = pytest.mark.stack


async def test_a_service_whose_kafka_consumers_hang_on_stop_still_stops(stack, monkeypatch):
    monkeypatch.setattr(app_module, "BROKER_STOP_S", 1.0)
    tag = uuid.uuid4().hex[:8]
    settings = ServiceSettings(CRM_SERVICE_NAME="stoptest", KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap,
                               MONGODB_URL=stack.mongodb_url, CRM_DATABASE_SUFFIX=f"_{tag}",
                               CRM_CONSUMER_GROUP=f"crm-stop-{tag}", CRM_DEV_MODE=True)
    app = create_service_app(settings, title="stops", description="d", wire=lambda ctx: Wiring())
    broker = app.state.ctx.broker
    real_stop = broker.stop

    async def stop_then_hang(*args) -> None:  # as aiokafka was seen to, leaving a group
        await real_stop(*args)
        await asyncio.Event().wait()

    monkeypatch.setattr(broker, "stop", stop_then_hang)
    try:
        async with running_app(app) as client:
            assert (await client.get("/health/live")).status_code == 200
            stopping = time.monotonic()
        # running_app would fail after 60 s; the service stopped at its own bound instead
        assert time.monotonic() - stopping < 20
    finally:
        mongo = create_client(stack.mongodb_url, app_name="test")
        await mongo.drop_database(app.state.ctx.db.name)
        await mongo.close()
