"""A service asked to stop stops, against the real servers, even when a step of its stop
hangs: its Kafka consumers leaving their group, or a shutdown hook that ignores being
cancelled. The step is left behind and named in a warning."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import pytest
from crm_runtime import app as app_module
from crm_runtime.app import Wiring, create_service_app
from crm_runtime.mongo import create_client
from crm_runtime.settings import ServiceSettings
from crm_runtime.testing import running_app

pytestmark = pytest.mark.stack


def settings_for(stack) -> ServiceSettings:
    tag = uuid.uuid4().hex[:8]
    return ServiceSettings(CRM_SERVICE_NAME="stoptest", KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap,
                           MONGODB_URL=stack.mongodb_url, CRM_DATABASE_SUFFIX=f"_{tag}",
                           CRM_CONSUMER_GROUP=f"crm-stop-{tag}", CRM_DEV_MODE=True)


class Warnings(logging.Handler):
    """The service's own warnings (its logging set-up replaces the root handlers)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        logging.getLogger("crm_runtime.app").addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def close(self) -> None:
        logging.getLogger("crm_runtime.app").removeHandler(self)
        super().close()


async def stops_in(app) -> float:
    """Seconds from leaving the running service to its lifespan's end (running_app fails after 60)."""
    try:
        async with running_app(app) as client:
            assert (await client.get("/health/live")).status_code == 200
            stopping = time.monotonic()
        return time.monotonic() - stopping
    finally:
        mongo = create_client(app.state.ctx.settings.mongodb_url, app_name="test")
        await mongo.drop_database(app.state.ctx.db.name)
        await mongo.close()


async def test_a_service_whose_kafka_consumers_hang_on_stop_still_stops(stack, monkeypatch):
    monkeypatch.setitem(app_module.STOP_WITHIN_S, "broker", 1.0)
    app = create_service_app(settings_for(stack), title="stops", description="d", wire=lambda ctx: Wiring())
    broker = app.state.ctx.broker
    real_stop = broker.stop

    async def stop_then_hang(*args) -> None:  # as aiokafka was seen to, leaving a group
        await real_stop(*args)
        await asyncio.Event().wait()

    monkeypatch.setattr(broker, "stop", stop_then_hang)
    warnings = Warnings()
    try:
        assert await stops_in(app) < 20
    finally:
        warnings.close()
    assert "stopping: the Kafka consumers and producer took over 1 s; going on without it" in warnings.messages


async def test_a_shutdown_hook_that_ignores_cancellation_does_not_hold_the_service(stack, monkeypatch):
    monkeypatch.setitem(app_module.STOP_WITHIN_S, "hook", 1.0)
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # ignores being cancelled

    app = create_service_app(settings_for(stack), title="stops", description="d",
                             wire=lambda ctx: Wiring(on_shutdown=[stubborn]))
    warnings = Warnings()
    try:
        assert await stops_in(app) < 20
    finally:
        release.set()
        warnings.close()
    assert "stopping: shutdown hook stubborn took over 1 s; going on without it" in warnings.messages
