"""Test helpers every suite may use (a pytest plugin, registered in the root conftest):
an event factory, "wait until an event matching X appears on topic T", and a service app
running in-process against the real stack.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from crm_contracts.envelope import CloudEvent, new_event


def make_event(type_: str, data: dict[str, Any], *, region: str = "shenzhen",
               subject: str | None = None, source: str = "/tests", id: str | None = None,
               time_: datetime | None = None) -> CloudEvent:
    """A valid CloudEvent of `type_`, with sensible defaults for the envelope."""
    return new_event(type_, source=source, subject=subject or str(uuid.uuid4()), region=region,
                     data=data, id=id, time=time_ or datetime.now(UTC))


@pytest.fixture
def event_factory() -> Callable[..., CloudEvent]:
    return make_event


async def produce(bootstrap: str, topic: str, value: bytes | CloudEvent, *, key: bytes | None = None,
                  headers: list[tuple[str, bytes]] | None = None) -> None:
    """Produce one raw message, as a partner's plain Kafka client would."""
    if isinstance(value, CloudEvent):
        key = key or value.subject.encode()
        value = value.model_dump_json(exclude_none=True).encode()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=8 * 1024 * 1024)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


@dataclass
class Seen:
    value: bytes
    key: bytes | None
    headers: dict[str, str]
    partition: int
    offset: int

    def json(self) -> dict[str, Any]:
        return json.loads(self.value)  # type: ignore[no-any-return]


async def wait_for_messages(bootstrap: str, topic: str, predicate: Callable[[Seen], bool], *,
                            count: int = 1, timeout: float = 30.0) -> list[Seen]:
    """Read `topic` from the beginning until `count` messages match, or fail after `timeout`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", group_id=None,
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    found: list[Seen] = []
    try:
        partitions = consumer.partitions_for_topic(topic)
        deadline = time.monotonic() + timeout
        while partitions is None and time.monotonic() < deadline:
            await consumer._client.force_metadata_update()  # topic may be new
            partitions = consumer.partitions_for_topic(topic)
            await asyncio.sleep(0.2)
        if partitions is None:
            raise AssertionError(f"topic {topic} does not exist")
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                for r in records:
                    seen = Seen(r.value or b"", r.key,
                                {k: v.decode(errors="replace") for k, v in (r.headers or ())},
                                r.partition, r.offset)
                    if predicate(seen):
                        found.append(seen)
            if len(found) >= count:
                return found
        raise AssertionError(f"{len(found)} of {count} matching messages on {topic} after {timeout}s")
    finally:
        await consumer.stop()


def event_of_type(type_: str, **data_fields: Any) -> Callable[[Seen], bool]:
    """Predicate: a CloudEvent of `type_` whose data has the given field values."""

    def match(seen: Seen) -> bool:
        try:
            body = seen.json()
        except ValueError:
            return False
        data = body.get("data") or {}
        return body.get("type") == type_ and all(data.get(k) == v for k, v in data_fields.items())

    return match


@asynccontextmanager
async def running_app(app: Any) -> AsyncIterator[Any]:
    """Run a service app in-process (lifespan included) and yield an httpx client for it."""
    import httpx
    from asgi_lifespan import LifespanManager

    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client


@asynccontextmanager
async def serving(app: Any, port: int | None = None) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a free (or the given) port of this event loop and
    yield its URL: for tests where apps call each other over real HTTP (the console, a
    provider's callbacks), which an in-process transport cannot stand in for."""
    import socket

    import uvicorn

    if port is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on", access_log=False))
    task = asyncio.create_task(server.serve())
    for _ in range(1200):
        if server.started or task.done():
            break
        await asyncio.sleep(0.05)
    if not server.started:
        raise RuntimeError(f"{app} did not start on port {port}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 60)


async def eventually(check: Callable[[], Any], *, timeout: float = 20.0, interval: float = 0.2) -> Any:
    """Await `check()` until it returns something truthy (sync or async), or fail."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met after {timeout}s (last value: {last!r})")


def unique_suffix() -> str:
    return "_t" + uuid.uuid4().hex[:8]


async def start_group_at_end(bootstrap: str, group: str, topics: list[str] | tuple[str, ...]) -> None:
    """A test's service reads only what is produced from now on, not what earlier tests left
    on the topics: a fresh group otherwise starts at the earliest offset, and late in a full
    run that is thousands of events to read before the test's own."""
    from aiokafka.structs import OffsetAndMetadata

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # a consumer without subscriptions knows no topics yet
        tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        assert tps, "no partitions found for the topics"
        ends = await consumer.end_offsets(tps)
        to_commit = {tp: OffsetAndMetadata(offset, "") for tp, offset in ends.items() if offset > 0}
        if to_commit:
            consumer.assign(list(to_commit))
            await consumer.commit(to_commit)
    finally:
        await consumer.stop()
