"""Wiring of the surveys service (`uvicorn --factory surveys.bootstrap:create_app`).

Nothing runs at import time: `create_app` builds the stores, the subscriptions, the
timers (due dates, reminders, expiry, the annual campaign) and the routers on the shared
service shape from `crm_runtime.app`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from functools import partial

from crm_runtime.app import ServiceContext, Wiring, create_service_app
from fastapi import FastAPI

from surveys.adapters import store
from surveys.adapters.quiet import QuietClaims
from surveys.adapters.worklist import Worklist
from surveys.deps import SurveysDeps
from surveys.entrypoints import http, kafka, page
from surveys.handlers import answering, campaign, lifecycle
from surveys.settings import SurveysSettings

log = logging.getLogger(__name__)

DESCRIPTION = """Return visits and satisfaction surveys along the customer journey: scheduled from
case, repair, sales and delivery events on the industry's timetable, with its exclusions
(consent, major complaints, renovation, not moved in, quiet period, open complaints);
answered by phone, at a home visit or on the customer's own signed page; results as
`survey.completed`; coverage per project and product type; the annual campaign."""


def build_deps(ctx: ServiceContext, settings: SurveysSettings,
               clock: Callable[[], datetime] | None = None) -> SurveysDeps:
    deps = SurveysDeps(
        surveys=store.SurveyStore(ctx.db, ctx.outbox), directory=store.Directory(ctx.db),
        worklist=Worklist(ctx.db), coverage=store.CoverageStore(ctx.db), campaigns=store.CampaignStore(ctx.db),
        timers=ctx.timers, policy=settings.policy, link_secret=settings.link_secret, quiet=QuietClaims(ctx.db),
        product_forms=settings.product_forms,
    )
    if clock is not None:  # tests move time; the timers follow the same clock
        deps.now = clock
        ctx.timers.clock = clock
    return deps


def wire(settings: SurveysSettings, clock: Callable[[], datetime] | None = None):
    def _wire(ctx: ServiceContext) -> Wiring:
        deps = build_deps(ctx, settings, clock)

        async def start_indexes() -> None:
            await store.ensure_indexes(ctx.db)

        repairing: list[asyncio.Task[None]] = []

        async def repair_worklist_forever() -> None:
            # Every replica may run it: settling a survey again is idempotent.
            while True:
                try:
                    await lifecycle.repair_worklist(deps, settings.worklist_repair_after_s)
                except Exception:
                    log.exception("worklist repair round failed; trying again")
                await asyncio.sleep(settings.worklist_repair_after_s)

        async def start_repair() -> None:
            repairing.append(asyncio.create_task(repair_worklist_forever(), name="worklist-repair"))

        async def stop_repair() -> None:
            for task in repairing:
                task.cancel()
            await asyncio.gather(*repairing, return_exceptions=True)

        return Wiring(
            subscriptions=kafka.subscriptions(deps),
            batch_subscriptions=kafka.batch_subscriptions(deps),
            routers=[http.build_router(deps), page.build_router(deps)],
            outbox_collections=[store.SURVEYS, store.CAMPAIGN_OUTBOX],
            timer_handlers={
                "survey.check": partial(answering.on_check, deps),
                "survey.remind": partial(answering.on_remind, deps),
                "survey.expire": partial(answering.on_expire, deps),
                "campaign.run": partial(_run_campaign, deps),
                "campaign.remind": partial(campaign.remind, deps),
                "campaign.close": partial(campaign.close, deps),
            },
            on_startup=[start_indexes, start_repair],
            on_shutdown=[stop_repair],
            ignore_types=kafka.IGNORED_TYPES,
        )

    return _wire


async def _run_campaign(deps: SurveysDeps, timer: dict) -> None:
    await campaign.run(deps, timer)


def create_app(settings: SurveysSettings | None = None, *, clock: Callable[[], datetime] | None = None) -> FastAPI:
    settings = settings or SurveysSettings()
    return create_service_app(settings, title="CRM surveys", description=DESCRIPTION, wire=wire(settings, clock))
