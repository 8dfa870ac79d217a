"""Wiring of the intake service (`uvicorn --factory intake.bootstrap:create_app`).

Nothing runs at import time: `create_app` builds the stores, the subscriptions and the
routers on the shared service shape from `crm_runtime.app`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from crm_contracts.regions import KNOWN_REGIONS
from crm_runtime.app import ServiceContext, Wiring, create_service_app
from fastapi import FastAPI

from intake.adapters import store
from intake.adapters.attachments import AttachmentStore
from intake.adapters.metrics import PrometheusMetrics
from intake.deps import IntakeDeps
from intake.domain.kind_hint import KindKeywords
from intake.entrypoints import http, kafka
from intake.entrypoints.smtp import SmtpListener
from intake.settings import IntakeSettings

DESCRIPTION = """Every contact in, nothing lost: hotline calls, forum posts, front-desk visits and
letters (post, fax, e-mail) become `crm.intake.contact.received.v1`, with the caller recognised
in the customer directory, a kind hint, and near-duplicates folded."""


def build_deps(ctx: ServiceContext, settings: IntakeSettings) -> IntakeDeps:
    default_keywords = KindKeywords.default()

    @cache
    def keywords_for(region: str) -> KindKeywords:
        override = settings.kind_keyword_overrides.get(region)
        return default_keywords.merged(override) if override else default_keywords

    return IntakeDeps(
        ctx=ctx, settings=settings,
        contacts=store.MongoContactStore(ctx.db, ctx.outbox),
        directory=store.MongoDirectory(ctx.db),
        attachments=AttachmentStore(ctx.db),
        keywords_for=keywords_for,
        known_region=lambda region: region in KNOWN_REGIONS,
        metrics=PrometheusMetrics(ctx.registry),
    )


def wire(settings: IntakeSettings) -> Callable[[ServiceContext], Wiring]:
    def _wire(ctx: ServiceContext) -> Wiring:
        deps = build_deps(ctx, settings)
        smtp = SmtpListener(deps)
        return Wiring(
            subscriptions=kafka.subscriptions(deps),
            batch_subscriptions=kafka.batch_subscriptions(deps),
            routers=[http.build_router(deps)],
            outbox_collections=[store.CONTACTS],
            on_startup=[smtp.start],
            on_shutdown=[smtp.stop],
            upload_limits={"/v1/contacts": settings.attachment_max_bytes * settings.attachment_max_count + 65536},
        )

    return _wire


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    return create_service_app(settings, title="CRM intake", description=DESCRIPTION, wire=wire(settings))
