"""Every Kafka subscription of reporting: every topic of the platform, in batches."""

from __future__ import annotations

from typing import Any

from crm_contracts.registry import events_consumed_by
from crm_runtime.kafka import BatchSubscription

from reporting import handlers
from reporting.adapters.store import Generation
from reporting.domain.apply import Record


def consumed_topics() -> dict[str, tuple[str, ...]]:
    """Topic -> the event types reporting reads there (all of them)."""
    found: dict[str, list[str]] = {}
    for spec in events_consumed_by("reporting"):
        found.setdefault(spec.topic, []).append(spec.type)
    return {t: tuple(types) for t, types in found.items()}


def to_records(items: list[tuple[Any, Any, Any]]) -> list[Record]:
    return [Record(r.topic, r.partition, r.offset, event, data) for event, data, r in items]


def batch_subscriptions(generation: Any, max_records: int = 500) -> list[BatchSubscription]:
    """`generation` is an async callable giving the Generation to write into, or None once
    that generation is retired (another one took over after a rebuild)."""

    async def on_batch(items: list[tuple[Any, Any, Any]]) -> None:
        gen: Generation | None = await generation()
        if gen is not None:
            await handlers.apply_batch(gen, to_records(items))

    return [BatchSubscription(topic, types, on_batch, max_records=max_records, with_records=True)
            for topic, types in consumed_topics().items()]
