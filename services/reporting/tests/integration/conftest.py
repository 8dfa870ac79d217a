from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from crm_contracts.envelope import new_event
from crm_contracts.registry import spec_for
from crm_runtime.auth import issue_token
from crm_runtime.testing import running_app, unique_suffix
from reporting.bootstrap import create_app
from reporting.settings import ReportingSettings

JWT_SECRET = "reporting-tests-secret-of-at-least-32-bytes"


def token(regions=("shenzhen",), roles=("supervisor",)) -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_token(JWT_SECRET, sub="tester", roles=list(roles),
                                                      regions=list(regions))}


def reporting_settings(stack, suffix: str, group: str | None = None) -> ReportingSettings:
    return ReportingSettings(
        KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap, MONGODB_URL=stack.mongodb_url, CRM_DATABASE_SUFFIX=suffix,
        CRM_JWT_SECRET=JWT_SECRET, CRM_CONSUMER_GROUP=group or f"crm-reporting{suffix}")


@pytest.fixture(scope="module")
def suffix() -> str:
    return unique_suffix()


@pytest.fixture(scope="module")
async def reporting(stack, suffix):
    app = create_app(reporting_settings(stack, suffix))
    async with running_app(app) as client:
        client.app = app
        yield client


class Events:
    """Events built with the contract models' types and published as the producers would:
    keyed by subject, so one aggregate's events stay on one partition in order."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, object]] = []

    def add(self, type_: str, data: dict, *, subject: str, region: str = "shenzhen", at: datetime | None = None,
            id: str | None = None) -> str:
        model = spec_for(type_).data_model.model_validate(data)  # the contract's own model
        event = new_event(type_, source="/tests", subject=subject, region=region, data=model, id=id,
                          time=at)
        self.pending.append((spec_for(type_).topic, event))
        return event.id

    async def publish(self, bootstrap: str) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for topic, event in self.pending:
                await producer.send(topic, event.model_dump_json(exclude_none=True).encode(),
                                    key=event.subject.encode(),
                                    headers=[("content-type", b"application/cloudevents+json")])
            await producer.flush()
        finally:
            await producer.stop()
        self.pending.clear()


async def group_caught_up(bootstrap: str, group: str, topics: list[str]) -> bool:
    """Every partition of the topics has the group's committed offset at its end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # metadata of every topic
        tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            committed = await consumer.committed(tp)
            if ends[tp] and (committed or 0) < ends[tp]:
                return False
        return True
    finally:
        await consumer.stop()


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
