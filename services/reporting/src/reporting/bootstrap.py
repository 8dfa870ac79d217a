"""Wiring of the reporting service (`uvicorn --factory reporting.bootstrap:create_app`):
read models fed by every topic in batches, the KPI and report API, the dashboard page.
Nothing runs at import time."""

from __future__ import annotations

import asyncio
import contextlib

from crm_runtime.app import ServiceContext, Wiring, create_service_app
from fastapi import FastAPI

from reporting.adapters.freshness import Commits
from reporting.adapters.store import ReadModels, active_generation_sync
from reporting.deps import ReportingDeps
from reporting.entrypoints import dashboard, http, kafka, replay
from reporting.settings import ReportingSettings, consumer_group_for

Settings = ReportingSettings  # the name the skeleton had; tests/integration/test_readiness.py uses it

DESCRIPTION = """The KPIs each regional customer centre is measured on, per region, project,
department and month, with their targets; the complaint monthly report as JSON, CSV and XLSX;
drill-down to the ids behind every number. Read models are fed by every topic of the platform."""


def build_deps(ctx: ServiceContext, settings: ReportingSettings) -> ReportingDeps:
    """`settings` name the base consumer group: each generation's group is derived from it."""
    commits = Commits(settings.kafka_bootstrap_servers, lambda name: consumer_group_for(settings, name))
    return ReportingDeps(ctx=ctx, settings=settings, models=ReadModels(ctx.db, commits=commits))


def wire(settings: ReportingSettings, generation: str):
    def _wire(ctx: ServiceContext) -> Wiring:
        deps = build_deps(ctx, settings)
        # The consumers write the generation this process started with, in its group. After
        # a rebuild switched generations, a follower keeps the active one current in the new
        # generation's group (taking its partitions over from the rebuild): no restart.
        written = deps.models.generation(generation)
        tasks: list[asyncio.Task[None]] = []

        retired: list[bool] = []

        async def target():
            return None if retired else written  # None: retired, the batch is not written

        own_group = consumer_group_for(settings, generation)

        async def retire() -> None:
            """Stop this process's consumers of the generation it started with (its group
            leaves, so no batch of it is written any more); the follower writes the active one."""
            retired.append(True)
            for subscriber in ctx.broker.subscribers:
                if getattr(subscriber, "group_id", None) == own_group:
                    await subscriber.stop()

        async def start_follower() -> None:
            tasks.append(asyncio.create_task(
                replay.follow_active(settings, deps.models, generation, retire=retire)))

        async def stop_follower() -> None:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if deps.models.commits is not None:
                await deps.models.commits.close()

        return Wiring(
            batch_subscriptions=kafka.batch_subscriptions(target, settings.batch_max_records),
            routers=[http.build_router(deps), dashboard.build_router()],
            on_startup=[start_follower], on_shutdown=[stop_follower],
        )

    return _wire


def create_app(settings: ReportingSettings | None = None, *, generation: str | None = None) -> FastAPI:
    settings = settings or ReportingSettings()
    generation = generation or active_generation_sync(settings.mongodb_url, settings.database_name)
    # the process's consumers join this generation's group; followers and queries derive
    # other generations' groups from the base one
    own = settings.model_copy(update={"consumer_group_override": consumer_group_for(settings, generation)})
    return create_service_app(own, title="CRM reporting", description=DESCRIPTION,
                              wire=wire(settings, generation))
