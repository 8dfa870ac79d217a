"""Wiring of the notifications service (`uvicorn --factory notifications.bootstrap:create_app`).

Nothing runs at import time: `create_app` builds the stores, the gateways, the
subscriptions, the timers and the routers on the shared service shape of `crm_runtime.app`.
"""

from __future__ import annotations

import asyncio
import contextlib
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from crm_runtime.app import ServiceContext, Wiring, create_service_app
from crm_runtime.leases import Lease
from fastapi import FastAPI

from notifications import handlers
from notifications.adapters.channels import load_factory
from notifications.adapters.inbox import StaffGateway
from notifications.adapters.ledger import LEDGER, LEDGER_EVENTS, Ledger
from notifications.adapters.pacing import RateLimiter
from notifications.adapters.store import Caps, Directory, OptOuts, StaffInbox, TemplateStore
from notifications.deps import NotificationsDeps
from notifications.domain.defaults import default_templates
from notifications.domain.gate import GatePolicy, SendWindow
from notifications.entrypoints import http, kafka
from notifications.handlers.broadcast import runner
from notifications.settings import NotificationsSettings

DESCRIPTION = """The right message, to the right person, on the right channel, at the right time, exactly
once: case, sales, project, unit and survey events become SMS, e-mail, letters and staff inbox
items through versioned templates and the send gate (consent, opt-outs, send window, public
holidays, household caps); each send is recorded in a ledger before the provider is called and
reported on `crm.notifications.deliveries.v1`."""


def build_deps(ctx: ServiceContext, settings: NotificationsSettings) -> NotificationsDeps:
    tz = ZoneInfo(settings.timezone)
    default_window = SendWindow.parse(settings.send_window)
    windows = {region: SendWindow.parse(w) for region, w in settings.region_send_windows.items()}

    @cache
    def policy_for(region: str) -> GatePolicy:
        return GatePolicy(windows.get(region, default_window), tz, settings.household_daily_cap)

    inbox = StaffInbox(ctx.db)
    gateways: dict[str, Any] = dict(load_factory(settings.gateway_factory)(settings))
    gateways["staff"] = StaffGateway(inbox)
    return NotificationsDeps(
        settings=settings, directory=Directory(ctx.db), optouts=OptOuts(ctx.db), templates=TemplateStore(ctx.db),
        inbox=inbox, ledger=Ledger(ctx.db, ctx.outbox), caps=Caps(ctx.db), timers=ctx.timers, gateways=gateways,
        limiter=RateLimiter(settings.sms_rate_per_s), policy_for=policy_for, tz=tz,
    )


def wire(settings: NotificationsSettings):  # type: ignore[no-untyped-def]
    def _wire(ctx: ServiceContext) -> Wiring:
        deps = build_deps(ctx, settings)
        ctx.app_deps = deps  # type: ignore[attr-defined]  # for tests and benchmarks
        tasks: list[asyncio.Task[None]] = []

        async def seed_templates() -> None:
            await deps.templates.seed(default_templates())

        async def start_runner() -> None:
            lease = Lease(ctx.db["leases"], "broadcasts", ctx.owner, settings.lease_ttl_s)
            tasks.append(asyncio.create_task(runner(deps, lease), name="broadcasts"))
            await handlers.schedule_care(deps, deps.clock().astimezone(deps.tz).date())

        async def stop() -> None:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for gateway in deps.gateways.values():
                with contextlib.suppress(Exception):
                    await gateway.close()

        return Wiring(
            subscriptions=kafka.subscriptions(deps),
            batch_subscriptions=kafka.batch_subscriptions(deps),
            routers=[http.build_router(deps)],
            outbox_collections=[LEDGER, LEDGER_EVENTS],
            timer_handlers=handlers.timer_handlers(deps),
            on_startup=[seed_templates, start_runner],
            on_shutdown=[stop],
            ignore_types=kafka.IGNORED,
        )

    return _wire


def create_app(settings: NotificationsSettings | None = None) -> FastAPI:
    settings = settings or NotificationsSettings()
    return create_service_app(settings, title="CRM notifications", description=DESCRIPTION, wire=wire(settings))
