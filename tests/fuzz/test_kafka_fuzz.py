"""Hostile CloudEvents on every topic a service consumes, each followed by a valid event on
the same key: every hostile one is dead-lettered exactly once with its reason, no valid
one is, and the service's consumer group commits past every valid one (the partition
never stops)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from crm_contracts.registry import events_consumed_by
from crm_contracts.topics import dlq_topic
from crm_runtime.testing import wait_for_messages
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from .conftest import RunningService, report
from .hostile import hostile_messages, valid_message

pytestmark = [pytest.mark.fuzz, pytest.mark.stack]

EXAMPLES = int(os.environ.get("CRM_FUZZ_KAFKA_EXAMPLES", "25"))  # hostile messages per event type


PLACEHOLDER = "fuzz-subject-placeholder"


def draw(strategy: st.SearchStrategy[Any], n: int) -> list[Any]:
    found: list[Any] = []

    @given(strategy)
    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    def collect(value: Any) -> None:
        found.append(value)

    collect()
    return found


async def committed(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items()}


@pytest.mark.timeout(900)
async def test_hostile_events_are_dead_lettered_once_and_valid_ones_behind_them_applied(
        stack, service: RunningService, fuzz_counts: dict[str, int]):
    specs = events_consumed_by(service.name)
    subscribed = service.subscribed_topics()
    not_yet = sorted({s.topic for s in specs} - subscribed)
    specs = [s for s in specs if s.topic in subscribed]
    if not specs:
        pytest.skip(f"{service.name} consumes none of its topics yet ({', '.join(not_yet) or 'none declared'})")
    if not_yet:
        report(f"{service.name} does not consume yet: {', '.join(not_yet)}")

    run = uuid.uuid4().hex[:8]
    hostile: dict[tuple[str, int, int], str] = {}  # (topic, partition, offset) -> what was broken
    valid: dict[tuple[str, int, int], str] = {}
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all", max_request_size=8 * 1024 * 1024)
    await producer.start()
    try:
        for spec in specs:
            drawn = draw(hostile_messages(spec, PLACEHOLDER), EXAMPLES)
            for i, (label, raw) in enumerate(drawn):  # one key per pair, so the pair shares a partition
                subject = f"fuzz-{run}-{spec.type.rsplit('.', 2)[-2]}-{i}"
                raw = raw.replace(PLACEHOLDER.encode(), subject.encode())
                sent = await producer.send_and_wait(spec.topic, raw, key=subject.encode())
                hostile[(spec.topic, sent.partition, sent.offset)] = label
                sent = await producer.send_and_wait(spec.topic, valid_message(spec, subject), key=subject.encode())
                valid[(spec.topic, sent.partition, sent.offset)] = spec.type
    finally:
        await producer.stop()

    # The group commits past every valid event: nothing stopped a partition.
    targets: dict[TopicPartition, int] = {}
    for topic, partition, offset in valid:
        tp = TopicPartition(topic, partition)
        targets[tp] = max(targets.get(tp, 0), offset + 1)
    deadline = time.monotonic() + 240
    while True:
        done = await committed(stack.bootstrap, service.settings.consumer_group)
        behind = {tp: (done.get(tp, -1), want) for tp, want in targets.items() if done.get(tp, -1) < want}
        if not behind:
            break
        assert time.monotonic() < deadline, f"{service.name} stopped behind a hostile event: {behind}"
        await asyncio.sleep(1)

    def ours(seen: Any) -> bool:
        h = seen.headers
        position = (h.get("crm-dlq-original-topic"), int(h.get("crm-dlq-original-partition", -1)),
                    int(h.get("crm-dlq-original-offset", -1)))
        return position in hostile or position in valid

    await wait_for_messages(stack.bootstrap, dlq_topic(service.name), ours, count=len(hostile), timeout=60)
    await asyncio.sleep(3)  # a second letter for any of them would arrive now
    letters = await wait_for_messages(stack.bootstrap, dlq_topic(service.name), ours, count=len(hostile), timeout=30)
    positions = Counter((s.headers["crm-dlq-original-topic"], int(s.headers["crm-dlq-original-partition"]),
                         int(s.headers["crm-dlq-original-offset"])) for s in letters)

    wrongly_dead = {p: valid[p] for p in positions if p in valid}
    assert not wrongly_dead, f"valid events dead-lettered: {wrongly_dead}"
    twice = {hostile[p]: n for p, n in positions.items() if n > 1}
    assert not twice, f"dead-lettered more than once: {twice}"
    missing = [hostile[p] for p in hostile if p not in positions]
    assert not missing, f"never dead-lettered: {missing}"
    assert all(s.headers.get("crm-dlq-error", "").startswith("contract:") for s in letters)

    fuzz_counts["kafka_hostile"] = fuzz_counts.get("kafka_hostile", 0) + len(hostile)
    fuzz_counts["kafka_valid_after"] = fuzz_counts.get("kafka_valid_after", 0) + len(valid)
    report(f"{service.name}: {len(hostile)} hostile events on {len({s.topic for s in specs})} topics, each "
          f"dead-lettered once; {len(valid)} valid ones behind them applied. Kinds: "
          f"{dict(Counter(label.split(' ')[0] for label in hostile.values()))}")
