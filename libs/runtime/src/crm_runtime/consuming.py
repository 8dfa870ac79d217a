"""One Kafka consumer per service, for all of its topics.

A consumer per topic meant a consumer group member per topic: a service starting or
stopping cost as many rebalances as it had topics, each pausing every member. Here one
batch subscriber takes everything `getmany` returns from all the service's topics (at
most `MAX_RECORDS`), dispatches each event by topic and type, and commits only once every
event of the batch is applied or dead-lettered:

- per-event `Subscription` handlers: the batch's events grouped by message key (the
  aggregate), keys side by side up to `Subscription.workers`, each key's events in order,
  a failing one retried with backoff (`DeliveryPolicy`), then dead-lettered;
- `BatchSubscription` handlers: their slice of the batch, through `handle_batch` (a
  failing batch split until the bad event is alone and dead-lettered).

If even the dead-letter topic cannot be written, the batch is not committed: FastStream
rewinds every partition to the batch's first offset and it is delivered again, which the
idempotent handlers make harmless. The same holds for a stop or a crash mid-batch: up to
`MAX_RECORDS` events come again to the next owner, not one. An idle consumer answers a
new event within ~`2 × BATCH_WAIT_MS` (FastStream waits that long after an empty fetch).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from crm_contracts.envelope import CloudEvent
from crm_contracts.registry import spec_for
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from crm_runtime.batching import group_by_key, run_per_key
from crm_runtime.kafka import (
    MAX_MESSAGE_BYTES,
    BatchSubscription,
    DeadLetters,
    DeliveryPolicy,
    EventHandler,
    Subscription,
    handle_batch,
    read_event,
    run_with_retries,
)

log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)

MAX_RECORDS = 500  # per delivered batch: bounds the memory and the redelivery after a crash
BATCH_WAIT_MS = 200  # how long `getmany` waits for a first record


@dataclass
class _Route:
    handlers: dict[str, EventHandler] = field(default_factory=dict)
    workers: int = 1
    batches: list[BatchSubscription] = field(default_factory=list)


Item = tuple[CloudEvent, Any, Any]


def subscribe_service(
    broker: KafkaBroker,
    subscriptions: Sequence[Subscription],
    batch_subscriptions: Sequence[BatchSubscription] = (),
    *,
    group_id: str,
    dead_letters: DeadLetters,
    policy: DeliveryPolicy,
    ignore_types: Iterable[str] = (),
    max_records: int = MAX_RECORDS,
) -> None:
    """Register one subscriber (one group member) over every topic of the subscriptions."""
    routes: dict[str, _Route] = {}
    for sub in subscriptions:
        route = routes.setdefault(sub.topic, _Route())
        route.handlers.update(sub.handlers)
        route.workers = max(route.workers, sub.workers)
    for batch_sub in batch_subscriptions:
        for type_ in batch_sub.event_types:
            spec_for(type_)
        routes.setdefault(batch_sub.topic, _Route()).batches.append(batch_sub)
    if not routes:
        return
    ignored = set(ignore_types)

    async def consume(msg: KafkaMessage) -> None:
        records: Any = msg.raw_message
        singles: dict[str, list[Item]] = {}
        batches: dict[int, list[Item]] = {}
        for record in records if isinstance(records, tuple) else (records,):
            if dead_letters.already_sent(record):
                continue  # dead-lettered in an earlier delivery of this batch
            parsed = read_event(record.value)
            if isinstance(parsed, str):
                await dead_letters.send_record(record, parsed, 1)
                continue
            event, data = parsed
            route = routes[record.topic]
            taken = False
            for batch_sub in route.batches:
                if event.type in batch_sub.event_types:
                    batches.setdefault(id(batch_sub), []).append((event, data, record))
                    taken = True
            if event.type in route.handlers:
                singles.setdefault(record.topic, []).append((event, data, record))
            elif not taken and event.type not in ignored:
                log.debug("no handler for %s on %s", event.type, record.topic)
        subs = {id(b): b for r in routes.values() for b in r.batches}
        outcomes = await asyncio.gather(
            *(handle_batch(subs[key], items, dead_letters, policy) for key, items in batches.items()),
            *(_handle_singles(routes[topic], items, dead_letters, policy) for topic, items in singles.items()),
            return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome  # not committed: the batch comes again

    broker.subscriber(
        *sorted(routes),
        group_id=group_id,
        batch=True,
        # A batch subscription asking for larger batches (reporting's rebuild) gets them.
        max_records=max([max_records, *(b.max_records for b in batch_subscriptions)]),
        batch_timeout_ms=BATCH_WAIT_MS,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
        # The raw bytes reach `consume`, which validates them itself.
        decoder=_raw_decoder,
        title=f"{group_id}:all",
    )(consume)


async def _raw_decoder(msg: Any) -> bytes:
    return msg.body


def _trace_of(record: Any) -> otel_context.Context:
    carrier = {name: value.decode(errors="replace") for name, value in record.headers or ()
               if isinstance(value, bytes)}
    return propagate.extract(carrier)


async def _handle_singles(route: _Route, items: list[Item], dead_letters: DeadLetters,
                          policy: DeliveryPolicy) -> None:
    # Same partition and key: the same aggregate, whose order Kafka keeps; keep it too.
    # Records without a key keep their partition's order.
    # With one worker, the events simply go one at a time in the order delivered.
    groups: dict[Any, list[Item]] = (
        group_by_key(items, lambda it: (it[2].partition, it[2].key if it[2].key is not None else b""))
        if route.workers > 1 else {None: items})

    async def in_order(_key: Any, group: Sequence[Item]) -> None:
        for event, data, record in group:
            # Each event continues its own trace (FastStream's span covers the whole batch),
            # so what the handler writes to the outbox carries the producer's trace on.
            with _tracer.start_as_current_span(f"{record.topic} process", context=_trace_of(record),
                                               kind=trace.SpanKind.CONSUMER):
                await run_with_retries(route.handlers[event.type], event, data, record, dead_letters, policy)

    failures = await run_per_key(groups, in_order, concurrency=route.workers)
    if failures:
        raise next(iter(failures.values()))

