"""Wiring of the cases service (`uvicorn --factory cases.bootstrap:create_app`).

Nothing runs at import time: `create_app` builds the repositories, the procedure's
configuration, the subscriptions, the SLA timers and the staff API.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from functools import cache

from crm_runtime.app import ServiceContext, Wiring, create_service_app
from fastapi import FastAPI

from cases import handlers
from cases.adapters import store
from cases.adapters.batch_store import ContactBatchStore
from cases.adapters.incidents_query import IncidentQuery, IndexedIncidents
from cases.adapters.metrics import CasesMetrics
from cases.adapters.worklist import ContactWorklist
from cases.deps import CasesDeps
from cases.domain.calendar import BusinessCalendar
from cases.domain.collective import CollectiveRules
from cases.domain.routing import Routing
from cases.domain.severity import SeverityRules
from cases.domain.sla import SlaPolicies
from cases.entrypoints import http, kafka
from cases.settings import CasesSettings

log = logging.getLogger(__name__)

DESCRIPTION = """The nine-step complaint procedure: cases opened from contacts, validated,
classified (general / major / crisis), assessed, investigated, handled, replied to, closed
with the customer's acceptance, visited again and turned into lessons; SLA clocks on each
region's business calendar; collective incidents; the staff queue."""


def build_deps(ctx: ServiceContext, settings: CasesSettings, metrics: CasesMetrics | None = None) -> CasesDeps:
    default_rules = SeverityRules.default()

    @cache
    def calendar_for(region: str) -> BusinessCalendar:
        config = settings.calendars.get(region)
        return BusinessCalendar.from_config(config) if config else BusinessCalendar()

    @cache
    def severity_rules_for(region: str) -> SeverityRules:
        override = settings.severity_overrides.get(region)
        return default_rules.merged(override) if override else default_rules

    return CasesDeps(
        cases=store.CaseRepository(ctx.db, ctx.outbox),
        contacts=store.ContactLog(ctx.db),
        worklist=ContactWorklist(ctx.db),
        incidents=IndexedIncidents(store.IncidentRepository(ctx.db, ctx.outbox), ctx.db),
        timers=ctx.timers,
        routing=Routing.from_config(settings.routing),
        policies=SlaPolicies.from_config(settings.sla_policies),
        calendar_for=calendar_for,
        severity_rules_for=severity_rules_for,
        collective_rules=CollectiveRules(settings.collective_min_customers, settings.collective_crisis_customers,
                                         timedelta(hours=settings.collective_window_hours)),
        metrics=metrics or CasesMetrics(ctx.registry),
        dissatisfied_return_visit=settings.dissatisfied_return_visit,
    )


def wire(settings: CasesSettings) -> Callable[[ServiceContext], Wiring]:
    def _wire(ctx: ServiceContext) -> Wiring:
        deps = build_deps(ctx, settings)
        cases = store.CaseRepository(ctx.db, ctx.outbox)

        async def on_sla_timer(timer: dict) -> None:
            await handlers.on_sla_timer(deps, timer)

        async def start_indexes() -> None:
            await store.ensure_indexes(ctx.db)

        repairing: list[asyncio.Task[None]] = []

        async def repair_queue_forever() -> None:
            # Every replica may run it: a repair re-places rows by revision, idempotently.
            while True:
                try:
                    await cases.repair_queue(older_than_s=settings.queue_repair_after_s)
                except Exception:
                    log.exception("queue repair round failed; trying again")
                await asyncio.sleep(settings.queue_repair_after_s)

        async def start_queue_repair() -> None:
            repairing.append(asyncio.create_task(repair_queue_forever(), name="queue-repair"))

        async def stop_queue_repair() -> None:
            for task in repairing:
                task.cancel()
            await asyncio.gather(*repairing, return_exceptions=True)

        return Wiring(
            subscriptions=kafka.subscriptions(deps),
            batch_subscriptions=kafka.batch_subscriptions(deps, ContactBatchStore(ctx.db, ctx.outbox, ctx.timers),
                                                          max_records=settings.contact_batch),
            ignore_types=kafka.IGNORED_TYPES,
            routers=[http.build_router(deps, IncidentQuery(ctx.db))],
            outbox_collections=[store.CASES, store.INCIDENTS],
            on_startup=[start_indexes, start_queue_repair],
            on_shutdown=[stop_queue_repair],
            timer_handlers={handlers.SLA_TIMER: on_sla_timer},
        )

    return _wire


def create_app(settings: CasesSettings | None = None) -> FastAPI:
    settings = settings or CasesSettings()
    return create_service_app(settings, title="CRM cases", description=DESCRIPTION, wire=wire(settings))
