"""Wiring of the intake service (`uvicorn --factory intake.bootstrap:create_app`).

Nothing runs at import time: `create_app` builds the stores, the subscriptions and the
routers on the shared service shape from `crm_runtime.app`.
"""

from __future__ import annotations

from functools import cache

from crm_contracts.regions import KNOWN_REGIONS
from crm_runtime.app import ServiceContext, Wiring, create_service_app
from fastapi import FastAPI

from intake import handlers
from intake.adapters import store
from intake.adapters.attachments import AttachmentStore
from intake.adapters.email_letters import LetterRefused, ParsedLetter, region_for, start_smtp_listener
from intake.deps import IntakeDeps
from intake.domain.kind_hint import KindKeywords
from intake.entrypoints import http, kafka
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
    )


def wire(settings: IntakeSettings):
    def _wire(ctx: ServiceContext) -> Wiring:
        deps = build_deps(ctx, settings)
        smtp: list = []

        async def start_indexes() -> None:
            await store.ensure_indexes(ctx.db)

        async def start_smtp() -> None:
            if settings.smtp_port:
                smtp.append(await start_smtp_listener(lambda letter: record_emailed_letter(deps, letter),
                                                      host=settings.smtp_host, port=settings.smtp_port,
                                                      max_bytes=settings.attachment_max_bytes * 2))

        async def stop_smtp() -> None:
            for controller in smtp:
                controller.stop()

        return Wiring(
            subscriptions=kafka.subscriptions(deps),
            batch_subscriptions=kafka.batch_subscriptions(deps),
            routers=[http.build_router(deps)],
            outbox_collections=[store.CONTACTS],
            on_startup=[start_indexes, start_smtp],
            on_shutdown=[stop_smtp],
            upload_limits={"/v1/contacts": settings.attachment_max_bytes * settings.attachment_max_count + 65536},
        )

    return _wire


async def record_emailed_letter(deps: IntakeDeps, letter: ParsedLetter) -> None:
    region = region_for(letter.recipients, deps.settings.smtp_mailboxes)
    attachments = [
        (await deps.attachments.put(name, ctype, data, contact_id=letter.message_id or "")).as_dict()
        for name, ctype, data in letter.files
    ]
    cmd = handlers.ReceiveContact(
            channel="letter", letter_form="email", region=region if region in KNOWN_REGIONS else None,
            subject=letter.subject, body=letter.body, name=letter.sender_name or None,
            email=letter.sender_email or None, source_ref=letter.message_id, received_at=letter.sent_at,
            attachments=attachments)
    try:
        await handlers.receive_contact(cmd, contacts=deps.contacts, directory=deps.directory,
                                       keywords_for=deps.keywords_for, known_regions=deps.known_region)
    except handlers.UnknownRegion as exc:
        raise LetterRefused("No customer centre region for this mailbox") from exc


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    return create_service_app(settings, title="CRM intake", description=DESCRIPTION, wire=wire(settings))
