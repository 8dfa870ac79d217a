"""Wiring of the console (`uvicorn --factory console.bootstrap:create_app`).

The console owns no data and no Kafka: it is pages over the services' HTTP APIs, so it is
built without `create_service_app` (which would open Kafka and MongoDB connections), yet
answers the same /health/live, /health/ready and /metrics as every service.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib.resources import files

import httpx
from crm_runtime.auth import TokenVerifier
from crm_runtime.logging import configure_logging
from crm_runtime.problems import install_problem_handlers
from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from prometheus_fastapi_instrumentator import Instrumentator

from console.adapters.oidc import OidcClient
from console.adapters.services import CasesClient, IntakeClient, ServiceClient, Services
from console.deps import ConsoleDeps
from console.entrypoints import http, pages_cases, pages_desk, pages_incidents, pages_more
from console.entrypoints.web import SignInRequired, sign_in_redirect
from console.settings import ConsoleSettings


def build_services(settings: ConsoleSettings, transport: httpx.AsyncBaseTransport | None = None) -> Services:
    timeout = settings.service_timeout_s
    return Services(
        intake=IntakeClient("intake", settings.intake_url, timeout, transport),
        cases=CasesClient("cases", settings.cases_url, timeout, transport),
        notifications=ServiceClient("notifications", settings.notifications_url, timeout, transport),
        surveys=ServiceClient("surveys", settings.surveys_url, timeout, transport),
        reporting=ServiceClient("reporting", settings.reporting_url, timeout, transport),
    )


def create_app(settings: ConsoleSettings | None = None, *, services: Services | None = None,
               oidc_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    settings = settings or ConsoleSettings()
    settings.refuse_unsafe()
    configure_logging(settings.service_name, settings.log_level)
    # httpx logs every request URL at INFO; the caller lookup's URL carries a phone number.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    oidc = (OidcClient(settings.oidc_issuer or "", settings.oidc_client_id or "", settings.oidc_client_secret,
                       settings.oidc_redirect_url, settings.oidc_scopes, transport=oidc_transport)
            if settings.oidc_enabled else None)
    deps = ConsoleDeps(
        settings=settings, services=services or build_services(settings),
        verifier=TokenVerifier(settings.signing_secret, settings.jwks_url, settings.jwt_audience),
        oidc=oidc, now=lambda: datetime.now(UTC),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await deps.services.aclose()
        if oidc is not None:
            await oidc.aclose()

    app = FastAPI(title="CRM staff console", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.deps = deps
    registry = CollectorRegistry()
    Instrumentator(registry=registry).instrument(app)
    app.mount("/static", StaticFiles(directory=str(files("console") / "static")), name="static")

    # A request no page would send (a forged form, a bad parameter) gets problem+json naming
    # the field, as from every service; a page the console could not build says why in HTML.
    install_problem_handlers(app)

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        return sign_in_redirect(request)

    app.include_router(http.build_router(deps, registry))
    app.include_router(pages_cases.build_router(deps))
    app.include_router(pages_desk.build_router(deps))
    app.include_router(pages_more.build_router(deps))
    app.include_router(pages_incidents.build_router(deps))
    return app
