"""Kafka plumbing every service shares: the broker, event publishing, what a service
subscribes to (`Subscription`, `BatchSubscription`), and the delivery rules the one
service consumer (`crm_runtime.consuming.subscribe_service`) applies to every message.

A handler gets a validated `CloudEvent` and its typed `data`, stores its effect
(idempotently, keyed by the event id) and returns. A failure is retried a bounded number
of times; what still cannot be processed goes to `crm.dlq.<service>` with headers naming
the original topic, partition, offset, the error and the attempt count. The consumer
commits only once every message is either processed or safely dead-lettered, so nothing
is lost and the messages behind a bad one keep flowing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from crm_contracts.envelope import CloudEvent
from crm_contracts.registry import ContractError, parse_event, spec_for
from crm_contracts.topics import dlq_topic
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from opentelemetry import trace
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel

log = logging.getLogger(__name__)

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # what the broker client accepts, so a big poison message arrives
MAX_EVENT_BYTES = 1024 * 1024  # what the contract accepts: events carry ids, not files

EventHandler = Callable[[CloudEvent, Any], Awaitable[None]]


class PermanentError(Exception):
    """An error that retrying cannot fix (bad data, a rule refusing the event): dead-letter now."""


def create_broker(
    bootstrap_servers: str,
    *,
    service: str,
    registry: CollectorRegistry | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> KafkaBroker:
    """A FastStream Kafka broker with tracing and metrics; the producer waits for all in-sync
    replicas (acks=all, idempotent) so an event the outbox marks as sent is really stored."""
    middlewares: list[Any] = [KafkaTelemetryMiddleware(tracer_provider=tracer_provider)]
    if registry is not None:
        middlewares.append(KafkaPrometheusMiddleware(registry=registry, app_name=f"crm-{service}"))
    return KafkaBroker(
        bootstrap_servers.split(","),
        acks="all",
        enable_idempotence=True,
        max_request_size=MAX_MESSAGE_BYTES,
        client_id=f"crm-{service}",
        middlewares=middlewares,
        graceful_timeout=15.0,
        logger=logging.getLogger(f"crm.{service}.kafka"),
    )


def encode_event(event: CloudEvent) -> bytes:
    return event.model_dump_json(exclude_none=True).encode()


def event_headers(traceparent: str | None = None) -> dict[str, str]:
    headers = {"content-type": CLOUDEVENTS_CONTENT_TYPE}
    if traceparent:
        headers["traceparent"] = traceparent
    return headers


async def publish_event(broker: KafkaBroker, topic: str, event: CloudEvent) -> None:
    """Publish one event, keyed by its aggregate (subject) so one aggregate stays in order.

    Prefer the outbox for anything that follows a state change; this is for gateways that
    only forward (the partner gateway) and for tests.
    """
    await broker.publish(
        encode_event(event), topic=topic, key=event.subject.encode(), headers=event_headers()
    )


# ------------------------------------------------------------------------- subscriptions


@dataclass
class DeliveryPolicy:
    max_attempts: int = 3
    backoff_s: float = 0.2


@dataclass
class Subscription:
    """One topic a service consumes, and what it does for each event type arriving there."""

    topic: str
    handlers: dict[str, EventHandler] = field(default_factory=dict)
    # How many message keys of one delivered batch are handled side by side, each key's
    # events in offset order (a key is an aggregate, so its order is kept). Handlers must
    # already be safe against a concurrent writer: another replica is one.
    workers: int = 1

    def on(self, event_type: str, handler: EventHandler) -> Subscription:
        spec_for(event_type)  # fails fast on a misspelled type
        self.handlers[event_type] = handler
        return self


class DeadLetters:
    """Writes what a service could not process to its dead-letter topic, each message once.

    A message already dead-lettered by this process (same topic, partition and offset) is
    not sent again when its batch is delivered again, e.g. after a later message of the
    batch failed: the retry of a batch must not multiply its dead letters. Only a crash
    between dead-lettering and committing sends one twice (the new process cannot know).
    """

    REMEMBERED = 100_000  # offsets kept, oldest forgotten first: far more than a batch retry needs

    def __init__(self, broker: KafkaBroker, service: str, metrics: Counter | None = None,
                 violations: Counter | None = None):
        self.broker = broker
        self.topic = dlq_topic(service)
        self.service = service
        self.metrics = metrics
        self.violations = violations
        self._sent: OrderedDict[tuple[str, int, int], None] = OrderedDict()

    def already_sent(self, record: Any) -> bool:
        return (record.topic, record.partition, record.offset) in self._sent

    async def send_record(self, record: Any, reason: str, attempts: int) -> None:
        position = (record.topic, record.partition, record.offset)
        if position in self._sent:
            return
        headers = {
            "crm-dlq-original-topic": record.topic,
            "crm-dlq-original-partition": str(record.partition),
            "crm-dlq-original-offset": str(record.offset),
            "crm-dlq-error": reason[:2000],
            "crm-dlq-attempts": str(attempts),
            "crm-dlq-service": self.service,
            "crm-dlq-at": str(int(time.time() * 1000)),
        }
        for name, value in record.headers or ():
            if not name.startswith("crm-dlq-") and isinstance(value, bytes):
                headers.setdefault(name, value.decode(errors="replace"))
        # acks=all: once this returns, the dead letter is stored and the offset may be committed.
        await self.broker.publish(record.value or b"", topic=self.topic, key=record.key,
                                  headers=headers)
        self._sent[position] = None
        if len(self._sent) > self.REMEMBERED:
            self._sent.popitem(last=False)
        if self.metrics is not None:
            self.metrics.labels(topic=record.topic).inc()
        if self.violations is not None and reason.startswith(CONTRACT_REASON):
            self.violations.labels(topic=record.topic).inc()
        log.warning(
            "dead-lettered message",
            extra={"topic": record.topic, "partition": record.partition,
                   "offset": record.offset, "attempts": attempts, "reason": reason[:500]},
        )


CONTRACT_REASON = "contract: "


def read_event(body: bytes | None) -> tuple[CloudEvent, Any] | str:
    """The validated event and its payload, or the reason (`contract: ...`) it breaks the
    contract. Never raises: whatever fails while reading a message is the message's fault,
    and retrying a message cannot change it, so it must not stall the partition."""
    body = body or b""
    if len(body) > MAX_EVENT_BYTES:
        return f"{CONTRACT_REASON}message of {len(body)} bytes exceeds the {MAX_EVENT_BYTES}-byte limit"
    try:
        return parse_event(body)
    except ContractError as exc:
        return f"{CONTRACT_REASON}{exc}"
    except Exception as exc:  # parse_event converts everything; this is the last guard
        return f"{CONTRACT_REASON}{type(exc).__name__}: {str(exc)[:500]}"


# (event, data) pairs, or (event, data, record) triples with `with_records=True`.
BatchHandler = Callable[[list[Any]], Awaitable[None]]


@dataclass
class BatchSubscription:
    """A high-volume topic handled in batches (a region's whole customer archive arriving
    at once): one store round trip per batch instead of per event."""

    topic: str
    event_types: tuple[str, ...]
    handler: BatchHandler
    max_records: int = 500
    # True: the handler receives (event, data, record) triples, the record being the Kafka
    # ConsumerRecord (topic, partition, offset), for handlers that keep applied offsets.
    with_records: bool = False


async def handle_batch(subscription: BatchSubscription, batch: list[tuple[CloudEvent, Any, Any]],
                       dead_letters: DeadLetters, policy: DeliveryPolicy) -> None:
    """Apply `batch` (valid events of the subscription's types, in offset order) through
    the handler, `max_records` at a time; returns once every event is applied or
    dead-lettered. Raises only when even the dead-letter topic cannot be written.

    A part of a failing batch may be stored before the failure and is applied again when
    its half is retried: the handler must be idempotent per event, as every handler is."""
    for start in range(0, len(batch), subscription.max_records):
        await _apply_or_split(subscription, batch[start:start + subscription.max_records], dead_letters,
                              policy, whole=True)


async def _apply_or_split(subscription: BatchSubscription, batch: list[tuple[CloudEvent, Any, Any]],
                          dead_letters: DeadLetters, policy: DeliveryPolicy, *, whole: bool) -> None:
    """The whole batch and a single event get the full retry policy; a part of a failed batch
    one attempt: it is only a step towards isolating the bad event. A failing part is split
    in halves (first half first, so one key's events keep their order) until the events
    that fail are alone and dead-lettered: ~2·log2(n) handler calls for one poison event in n,
    not n."""
    if not batch:
        return
    single = len(batch) == 1
    attempts = policy if whole or single else DeliveryPolicy(1, policy.backoff_s)
    try:
        await _with_retries(lambda: subscription.handler(_handler_items(subscription, batch)), attempts)
        return
    except PermanentError as exc:
        if single:
            await dead_letters.send_record(batch[0][2], f"rejected: {exc}", 1)
            return
    except Exception as exc:
        if single:
            await dead_letters.send_record(batch[0][2], f"{type(exc).__name__}: {exc}", policy.max_attempts)
            return
        log.warning("batch of %d failed (%s); splitting it", len(batch), type(exc).__name__)
    middle = len(batch) // 2
    await _apply_or_split(subscription, batch[:middle], dead_letters, policy, whole=False)
    await _apply_or_split(subscription, batch[middle:], dead_letters, policy, whole=False)


def _handler_items(subscription: BatchSubscription, batch: list[tuple[CloudEvent, Any, Any]]) -> list[Any]:
    return list(batch) if subscription.with_records else [(e, d) for e, d, _ in batch]


async def _with_retries(action: Callable[[], Awaitable[None]], policy: DeliveryPolicy) -> None:
    attempt = 0
    while True:
        attempt += 1
        try:
            await action()
            return
        except PermanentError:
            raise
        except Exception:
            if attempt >= policy.max_attempts:
                raise
            await asyncio.sleep(policy.backoff_s * (2 ** (attempt - 1)))


async def run_with_retries(
    handler: EventHandler,
    event: CloudEvent,
    data: BaseModel,
    record: Any,
    dead_letters: DeadLetters,
    policy: DeliveryPolicy,
) -> None:
    attempt = 0
    while True:
        attempt += 1
        try:
            await handler(event, data)
            return
        except PermanentError as exc:
            await dead_letters.send_record(record, f"rejected: {exc}", attempt)
            return
        except Exception as exc:
            if attempt >= policy.max_attempts:
                await dead_letters.send_record(record, f"{type(exc).__name__}: {exc}", attempt)
                return
            log.warning(
                "handler failed, retrying",
                extra={"event_type": event.type, "event_id": event.id, "attempt": attempt,
                       "error": f"{type(exc).__name__}: {exc}"},
            )
            await asyncio.sleep(policy.backoff_s * (2 ** (attempt - 1)))
