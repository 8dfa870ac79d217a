"""The embedded stack is the real thing: Kafka consumer groups commit, the MongoDB-protocol
server enforces unique indexes, and the compose file for Docker machines is valid."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]


async def test_cloudevent_round_trip_through_kafka_with_a_committing_consumer_group(stack):
    topic = f"test.roundtrip.{uuid.uuid4().hex[:8]}"
    group = f"test-group-{uuid.uuid4().hex[:8]}"
    event = {"specversion": "1.0", "id": str(uuid.uuid4()), "type": "crm.partner.forum.post-published.v1",
             "source": "/forum", "time": "2026-03-01T09:30:00+08:00", "subject": "post-1",
             "region": "shenzhen", "datacontenttype": "application/json", "data": {"post_id": "post-1"}}
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(3):
            await producer.send_and_wait(topic, json.dumps({**event, "id": f"{event['id']}-{i}"}).encode(),
                                         key=b"post-1",
                                         headers=[("content-type", b"application/cloudevents+json")])
    finally:
        await producer.stop()

    async def consume_some(n: int) -> list[dict]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=stack.bootstrap, group_id=group,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            got: list[dict] = []
            while len(got) < n:
                record = await consumer.getone()
                got.append(json.loads(record.value))
                await consumer.commit()
            return got
        finally:
            await consumer.stop()

    first = await consume_some(2)
    assert [e["id"][-2:] for e in first] == ["-0", "-1"]
    # A new member of the same group resumes after the committed offset.
    rest = await consume_some(1)
    assert rest[0]["id"].endswith("-2")
    assert rest[0]["region"] == "shenzhen"


async def test_document_round_trip_and_unique_index_in_the_mongodb_protocol_server(stack):
    client: AsyncMongoClient = AsyncMongoClient(stack.mongodb_url, tz_aware=True)
    try:
        db = client[f"test_{uuid.uuid4().hex[:8]}"]
        await db.contacts.create_index([("channel", 1), ("source_ref", 1)], unique=True)
        await db.contacts.insert_one({"_id": "c1", "channel": "hotline", "source_ref": "call-1",
                                      "subject": "漏水", "tags": ["leak"]})
        doc = await db.contacts.find_one({"channel": "hotline", "source_ref": "call-1"})
        assert doc is not None and doc["subject"] == "漏水" and doc["tags"] == ["leak"]
        with pytest.raises(DuplicateKeyError):
            await db.contacts.insert_one({"_id": "c2", "channel": "hotline", "source_ref": "call-1"})
        assert await db.contacts.count_documents({}) == 1
        hello = await client.admin.command("hello")
        assert hello["ok"] == 1.0
    finally:
        await client.close()


def _docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _docker_compose_available(), reason="no docker compose CLI on this machine")
def test_compose_file_is_valid():
    result = subprocess.run(["docker", "compose", "-f", str(ROOT / "deploy" / "compose.yaml"), "config", "-q"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
