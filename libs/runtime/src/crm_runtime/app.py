"""The shape every service shares: one process, FastAPI for HTTP and FastStream Kafka
subscribers in the same event loop, its own MongoDB database, an outbox relay, durable
timers, health, metrics, AsyncAPI, JSON logs and traces.

A service describes itself with a `Wiring` (its subscriptions, routers, outbox
collections, timers and start-up work); `create_service_app` does the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_fastapi_instrumentator import Instrumentator
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from crm_runtime.auth import TokenVerifier
from crm_runtime.consuming import subscribe_service
from crm_runtime.kafka import (
    BatchSubscription,
    DeadLetters,
    DeliveryPolicy,
    Subscription,
    create_broker,
)
from crm_runtime.leases import Lease, TimerHandler, Timers, replica_id
from crm_runtime.logging import configure_logging
from crm_runtime.metrics import RuntimeMetrics
from crm_runtime.mongo import create_client
from crm_runtime.outbox import Outbox, OutboxRelay
from crm_runtime.problems import Problem, RequestSizeLimit, install_problem_handlers
from crm_runtime.revisions import keep_claims_bounded
from crm_runtime.settings import ServiceSettings, UnsafeSettings
from crm_runtime.telemetry import configure_tracing

log = logging.getLogger(__name__)

# A service asked to stop stops, within the 60 s an orchestrator (and the tests) give it:
# each step has a bound, and one that overruns is left behind, named in a warning. The
# consumers' graceful wait for running handlers is 15 s (kafka.create_broker); clean-clone
# test runs saw a service's stop sit for a minute at a step before the consumers', and
# aiokafka has an open issue about consumers of one group freezing when they stop together.
STOP_WITHIN_S = {"quick": 3.0, "hook": 8.0, "timers": 8.0, "relay": 8.0, "broker": 22.0}


async def _awaited(task: asyncio.Task[Any]) -> None:
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def _stop_within(step: Callable[[], Awaitable[Any]], what: str, seconds: float) -> None:
    """Run one shutdown step for at most `seconds`, without waiting on a step that ignores
    cancellation (asyncio.wait, not wait_for, which would wait for the cancelled step)."""
    task = asyncio.ensure_future(step())
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        log.warning("stopping: %s took over %.0f s; going on without it", what, seconds)
    elif not task.cancelled() and task.exception() is not None:
        log.warning("stopping: %s failed", what, exc_info=task.exception())


@dataclass
class ServiceContext:
    """What a service's adapters and handlers are built from."""

    settings: ServiceSettings
    broker: KafkaBroker
    mongo: AsyncMongoClient[dict[str, Any]]
    db: AsyncDatabase[dict[str, Any]]
    registry: CollectorRegistry
    owner: str  # this replica's id, for leases and timers
    relay: OutboxRelay | None = None
    outbox: Outbox = None  # type: ignore[assignment]  # set by create_service_app
    timers: Timers = None  # type: ignore[assignment]  # set by create_service_app
    kafka_connected: asyncio.Event = field(default_factory=asyncio.Event)
    runtime_metrics: RuntimeMetrics | None = None  # set by create_service_app

    async def wait_for_kafka(self, timeout: float = 10.0) -> None:
        """For a request that must publish now: refuse with 503 rather than hang."""
        try:
            await asyncio.wait_for(self.kafka_connected.wait(), timeout)
        except TimeoutError as exc:
            raise Problem(503, "Kafka unavailable", "Events cannot be published right now; retry later.",
                          headers={"Retry-After": "5"}) from exc

    def notify_outbox(self) -> None:
        if self.relay is not None:
            self.relay.notify()


@dataclass
class Wiring:
    subscriptions: Sequence[Subscription] = ()
    batch_subscriptions: Sequence[BatchSubscription] = ()
    routers: Sequence[APIRouter] = ()
    outbox_collections: Sequence[str] = ()
    timer_handlers: dict[str, TimerHandler] = field(default_factory=dict)
    on_startup: Sequence[Callable[[], Awaitable[None]]] = ()
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = ()
    # Event types seen on a subscribed topic that this service deliberately ignores.
    ignore_types: Sequence[str] = ()
    upload_limits: dict[str, int] = field(default_factory=dict)


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    wire: Callable[[ServiceContext], Wiring],
) -> FastAPI:
    configure_logging(settings.service_name, settings.log_level)
    try:
        settings.refuse_unsafe()
    except UnsafeSettings as exc:
        log.critical("%s", exc)
        raise
    tracer_provider = configure_tracing(settings.service_name)
    registry = CollectorRegistry()
    broker = create_broker(settings.kafka_bootstrap_servers, service=settings.service_name,
                           registry=registry, tracer_provider=tracer_provider)
    mongo = create_client(settings.mongodb_url, app_name=f"crm-{settings.service_name}")
    db = mongo[settings.database_name]
    ctx = ServiceContext(settings=settings, broker=broker, mongo=mongo, db=db, registry=registry,
                         owner=replica_id())
    # Durable timers: a service registers its kinds with `ctx.timers.on(kind, handler)`.
    ctx.timers = Timers(db["timers"], ctx.owner, poll_interval_s=settings.timer_poll_interval_s)
    ctx.outbox = Outbox(db, notify=ctx.notify_outbox)
    wiring = wire(ctx)

    dead_letters = DeadLetters(
        broker, settings.service_name,
        Counter("crm_dead_letters_total", "Messages sent to the dead-letter topic", ["topic"], registry=registry),
        violations=Counter("crm_contract_violations_total",
                           "Messages refused by the contract (dead-lettered at once)", ["topic"], registry=registry))
    policy = DeliveryPolicy(settings.handler_max_attempts, settings.handler_retry_backoff_s)
    # One consumer for all the service's topics: a start or a stop is one rebalance.
    subscribe_service(broker, wiring.subscriptions, wiring.batch_subscriptions,
                      group_id=settings.consumer_group, dead_letters=dead_letters, policy=policy,
                      ignore_types=wiring.ignore_types)

    if wiring.outbox_collections:
        ctx.relay = OutboxRelay(
            broker, [db[name] for name in wiring.outbox_collections],
            Lease(db["leases"], "outbox-relay", ctx.owner, settings.lease_ttl_s),
            poll_interval_s=settings.outbox_poll_interval_s,
        )
    ctx.runtime_metrics = RuntimeMetrics(registry, broker, db, wiring.outbox_collections)
    for kind, handler in wiring.timer_handlers.items():
        ctx.timers.on(kind, handler)
    timers = ctx.timers if ctx.timers.handlers else None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for hook in wiring.on_startup:
            await _retry_forever(hook, f"{settings.service_name} start-up")
        async def start_broker() -> None:
            await _retry_forever(broker.start, "Kafka connection")
            ctx.kafka_connected.set()
            if ctx.relay:  # the relay publishes: it starts once the producer is connected
                await ctx.relay.start()

        broker_task = asyncio.create_task(start_broker())
        # Usually Kafka answers at once: start serving connected. If not, serve anyway
        # (health says unready) and connect in the background.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(ctx.kafka_connected.wait()), 15)
        if timers:
            await timers.start()
        claims_task = asyncio.create_task(keep_claims_bounded(db))
        try:
            yield
        finally:
            claims_task.cancel()
            await _stop_within(lambda: _awaited(claims_task), "the claims pruner", STOP_WITHIN_S["quick"])
            for hook in wiring.on_shutdown:
                await _stop_within(hook, f"shutdown hook {getattr(hook, '__name__', hook)}", STOP_WITHIN_S["hook"])
            if timers:
                await _stop_within(timers.stop, "the timers", STOP_WITHIN_S["timers"])
            if ctx.relay:
                await _stop_within(ctx.relay.stop, "the outbox relay", STOP_WITHIN_S["relay"])
            broker_task.cancel()
            await _stop_within(lambda: _awaited(broker_task), "the Kafka connection", STOP_WITHIN_S["quick"])
            # what the consumers did not commit is read again by the partitions' next owner
            await _stop_within(broker.stop, "the Kafka consumers and producer", STOP_WITHIN_S["broker"])
            await _stop_within(mongo.close, "the store client", STOP_WITHIN_S["quick"])

    # FastAPI's own /docs loads Swagger UI from a public CDN: blank on an offline intranet.
    app = FastAPI(title=title, description=description, version="1.0.0", lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    _mount_doc_assets(app)
    app.state.ctx = ctx
    app.state.token_verifier = TokenVerifier(settings.signing_secret, settings.jwks_url, settings.jwt_audience)
    install_problem_handlers(app)
    app.add_middleware(RequestSizeLimit, max_bytes=settings.max_request_bytes,  # type: ignore[arg-type]
                       overrides=wiring.upload_limits)
    Instrumentator(registry=registry, excluded_handlers=["/metrics", "/health/.*", "/static/.*"]).instrument(app)
    # One server span per request: the ASGI "http receive"/"http send" child spans (three
    # more per request) tell nothing here and cost CPU on every request.
    FastAPIInstrumentor.instrument_app(app, tracer_provider=tracer_provider,
                                       excluded_urls="health/live,health/ready,metrics",
                                       exclude_spans=["receive", "send"])
    app.include_router(_operational_router(ctx, title))
    for router in wiring.routers:
        app.include_router(router)
    return app


async def _retry_forever(action: Callable[[], Awaitable[Any]], what: str) -> None:
    """Start-up steps wait for Kafka or the database instead of crashing the process;
    /health/ready says unready meanwhile."""
    delay = 0.5
    while True:
        try:
            await action()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s failed, retrying in %.1fs: %s", what, delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def _operational_router(ctx: ServiceContext, title: str) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/health/live", summary="The process is up")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/health/ready", summary="Kafka and the database answer",
                responses={503: {"description": "Kafka or the database does not answer"}})
    async def ready() -> JSONResponse:
        kafka_ok, db_ok = await asyncio.gather(_kafka_ok(ctx.broker), _db_ok(ctx.db))
        body = {"status": "ok" if kafka_ok and db_ok else "unavailable",
                "checks": {"kafka": "ok" if kafka_ok else "down",
                           "database": "ok" if db_ok else "down"}}
        return JSONResponse(body, status_code=200 if kafka_ok and db_ok else 503)

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        if ctx.runtime_metrics is not None:
            await ctx.runtime_metrics.refresh()
        return Response(generate_latest(ctx.registry), media_type=CONTENT_TYPE_LATEST)

    @router.get("/asyncapi.json", summary="AsyncAPI document of this service's Kafka side")
    async def asyncapi_json() -> JSONResponse:
        return JSONResponse(_asyncapi(ctx.broker, title).to_jsonable())

    @router.get("/asyncapi", summary="AsyncAPI documentation", response_class=HTMLResponse)
    async def asyncapi_html(request: Request) -> HTMLResponse:
        return HTMLResponse(_asyncapi_page(title, request.scope.get("root_path", "")))

    @router.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json", title=f"{title} API",
            swagger_js_url=f"{root}/static/swagger/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/static/swagger/swagger-ui.css",
            swagger_favicon_url=f"{root}/static/swagger/favicon.png",
        )

    return router


# ---------------------------------------------------------------- offline documentation pages
# Both pages load their scripts from the service itself: Swagger UI from the
# fastapi-offline package, the AsyncAPI viewer from static/asyncapi/ (vendored, see its README).

def _mount_doc_assets(app: FastAPI) -> None:
    swagger = files("fastapi_offline") / "static"
    asyncapi = files("crm_runtime") / "static" / "asyncapi"
    app.mount("/static/swagger", StaticFiles(directory=str(swagger)), name="swagger-assets")
    app.mount("/static/asyncapi", StaticFiles(directory=str(asyncapi)), name="asyncapi-assets")


def _asyncapi_page(title: str, root: str) -> str:
    config = {"schema": {"url": f"{root}/asyncapi.json"},
              "config": {"show": {"sidebar": True, "info": True, "servers": True, "operations": True,
                                  "messages": True, "schemas": True, "errors": True},
                         "expand": {"messageExamples": True}}}
    return f"""<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>{html.escape(title)} AsyncAPI</title>
  <link rel="icon" type="image/png" href="{root}/static/swagger/favicon.png">
  <link rel="stylesheet" href="{root}/static/asyncapi/default.min.css">
</head>
<body>
  <div id="asyncapi"></div>
  <script src="{root}/static/asyncapi/index.js"></script>
  <script>window.AsyncApiStandalone.render({json.dumps(config)}, document.getElementById("asyncapi"));</script>
</body>
</html>
"""


def _asyncapi(broker: KafkaBroker, title: str) -> Any:
    return AsyncAPI(broker, title=title, version="1.0.0").to_specification()


async def _kafka_ok(broker: KafkaBroker) -> bool:
    try:
        return bool(await broker.ping(timeout=1.5))
    except Exception:
        return False


async def _db_ok(db: AsyncDatabase[dict[str, Any]]) -> bool:
    try:
        await asyncio.wait_for(db.command("ping"), 1.5)
        return True
    except Exception:
        return False
