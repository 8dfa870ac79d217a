"""Create the platform's topics idempotently, with their partition counts."""

from __future__ import annotations

import asyncio
import os

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError


async def ensure_topics(
    bootstrap: str, topics: list[str] | tuple[str, ...], partitions: int | None = None
) -> list[str]:
    """Create the topics that do not exist yet; return the ones created."""
    partitions = partitions or int(os.environ.get("CRM_TOPIC_PARTITIONS", "6"))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing]
                )
            except TopicAlreadyExistsError:
                pass  # another replica or process created it first: that is the goal
        return missing
    finally:
        await admin.close()


def ensure_topics_sync(
    bootstrap: str, topics: list[str] | tuple[str, ...], partitions: int | None = None
) -> list[str]:
    return asyncio.run(ensure_topics(bootstrap, topics, partitions))
