"""Runtime gauges on `/metrics`, refreshed when Prometheus scrapes: how far the service is
behind, in the two places where work waits.

- `crm_outbox_pending_events{collection}`: events stored with a state change and not yet
  published by the outbox relay. Read from the database, so every replica reports the
  same value for the service: aggregate with `max`, not `sum`.
- `crm_consumer_lag{topic,partition}`: messages on a partition after the offset this
  service's consumer group has committed (the high-water mark minus the committed
  offset). Each replica reports the partitions assigned to it: aggregate with `sum`.

Dead letters are counted where they are sent (`crm_dead_letters_total{topic}`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry, Gauge
from pymongo.asynchronous.database import AsyncDatabase

from crm_runtime.outbox import MARKERS, OUTBOX

log = logging.getLogger(__name__)

# A scrape reads at most this many marked documents (by `_id`, the only filter FerretDB
# pushes down); past it each further marked document counts as one event (a lower bound).
MAX_DOCUMENTS_READ = 1000
REFRESH_TIMEOUT_S = 3.0


class RuntimeMetrics:
    def __init__(self, registry: CollectorRegistry, broker: KafkaBroker, db: AsyncDatabase[dict[str, Any]],
                 outbox_collections: Sequence[str]) -> None:
        self.broker = broker
        self.db = db
        self.outbox_collections = list(outbox_collections)
        self.outbox_pending = Gauge(
            "crm_outbox_pending_events", "Events in an outbox, not yet published to Kafka",
            ["collection"], registry=registry)
        self.consumer_lag = Gauge(
            "crm_consumer_lag", "Messages on a partition not yet processed and committed by this service",
            ["topic", "partition"], registry=registry)
        for name in self.outbox_collections:
            self.outbox_pending.labels(collection=name).set(0)

    async def refresh(self) -> None:
        """Bring the gauges up to date; a part that fails or is slow keeps its last values
        (the scrape itself must not fail while Kafka or the database is away)."""
        async def guarded(part: Callable[[], Awaitable[None]]) -> None:
            try:
                await asyncio.wait_for(part(), REFRESH_TIMEOUT_S)
            except Exception as exc:  # TimeoutError included
                log.debug("metrics refresh %s failed: %r", part.__name__, exc)

        # Side by side: a scrape waits at most REFRESH_TIMEOUT_S, within Prometheus' 10 s.
        await asyncio.gather(guarded(self._refresh_outbox), guarded(self._refresh_lag))

    async def _refresh_outbox(self) -> None:
        if not self.outbox_collections:
            return
        markers = [m async for m in self.db[MARKERS].find({}, {"collection": 1, "doc_id": 1})
                   .limit(MAX_DOCUMENTS_READ * 10)]
        slots = asyncio.Semaphore(16)

        async def events_of(marker: dict[str, Any]) -> int:
            async with slots:
                doc = await self.db[marker["collection"]].find_one({"_id": marker["doc_id"]}, {OUTBOX: 1})
            return len((doc or {}).get(OUTBOX) or [])

        relayed = [m for m in markers if m.get("collection") in self.outbox_collections]
        read, rest = relayed[:MAX_DOCUMENTS_READ], relayed[MAX_DOCUMENTS_READ:]
        counts = await asyncio.gather(*(events_of(m) for m in read))
        pending: Tally[str] = Tally()
        for marker, count in zip(read, counts, strict=True):
            pending[marker["collection"]] += count
        for marker in rest:
            pending[marker["collection"]] += 1
        for name in self.outbox_collections:
            self.outbox_pending.labels(collection=name).set(pending[name])

    async def _refresh_lag(self) -> None:
        lags: dict[tuple[str, int], int] = {}
        for consumer in _consumers(self.broker):
            assigned = list(consumer.assignment())
            if not assigned:
                continue
            ends = await consumer.end_offsets(assigned)
            committed = {tp: await consumer.committed(tp) for tp in assigned}
            # Nothing committed yet: the group starts at the beginning (auto_offset_reset=earliest).
            uncommitted = [tp for tp, offset in committed.items() if offset is None]
            starts = await consumer.beginning_offsets(uncommitted) if uncommitted else {}
            for tp in assigned:
                done = committed[tp]
                lags[(tp.topic, tp.partition)] = max(0, ends[tp] - (done if done is not None else starts[tp]))
        self.consumer_lag.clear()  # partitions revoked since the last scrape disappear
        for (topic, partition), lag in lags.items():
            self.consumer_lag.labels(topic=topic, partition=str(partition)).set(lag)


def _consumers(broker: KafkaBroker) -> list[AIOKafkaConsumer]:
    """The aiokafka consumers behind FastStream 0.7's subscribers: one per subscriber, or a
    `consumer_subgroup` of them for a subscriber with `max_workers`."""
    found: list[AIOKafkaConsumer] = []
    for subscriber in broker.subscribers:
        group: list[Any] = list(getattr(subscriber, "consumer_subgroup", None) or [])
        single = getattr(subscriber, "consumer", None)
        for consumer in group or ([single] if single is not None else []):
            if isinstance(consumer, AIOKafkaConsumer) and consumer not in found:
                found.append(consumer)
    return found
