"""Which shards a query may answer from memory: those whose source partition has not
committed since they were read.

Every writer of a generation (the service's consumers, a follower, the rebuild) stores a
batch and only then commits its offsets in that generation's consumer group, whichever
replica it runs in. So one OffsetFetch (one Kafka round trip, every partition) tells a
replica whether anything was stored since: if a partition's committed offset is what it
was when a shard was read, the shard read then is still the stored one, or behind it by
an uncommitted batch only (as a read a moment earlier would be). Correct for any number of
replicas, on MongoDB and FerretDB alike; without Kafka, every read goes to the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from aiokafka.admin import AIOKafkaAdminClient

log = logging.getLogger(__name__)

Offsets = dict[tuple[str, int], int]


class Commits:
    """The committed offsets of a generation's consumer group, one fetch shared by the
    queries waiting for it (a fetch that began after a query did is fresh enough for it)."""

    def __init__(self, bootstrap: str, group_of: Callable[[str], str], timeout_s: float = 2.0):
        self.bootstrap = bootstrap
        self.group_of = group_of
        self.timeout_s = timeout_s
        self._admin: AIOKafkaAdminClient | None = None
        self._coordinators: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._last: dict[str, tuple[float, Offsets]] = {}

    async def offsets(self, generation: str) -> Offsets | None:
        group = self.group_of(generation)
        asked = time.monotonic()
        async with self._locks.setdefault(group, asyncio.Lock()):
            at, found = self._last.get(group, (0.0, {}))
            if at >= asked:
                return found
            try:
                found = await asyncio.wait_for(self._fetch(group), self.timeout_s)
            except Exception as exc:  # Kafka away: no cache, every read from the store
                log.info("committed offsets unavailable (%s): reading from the store", type(exc).__name__)
                self._coordinators.pop(group, None)
                await self.close()
                return None
            self._last[group] = (time.monotonic(), found)
            return found

    async def _fetch(self, group: str) -> Offsets:
        if self._admin is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap.split(","), client_id="crm-reporting-queries")
            await admin.start()
            self._admin = admin
        if group not in self._coordinators:
            self._coordinators[group] = await self._admin.find_coordinator(group)
        found = await self._admin.list_consumer_group_offsets(group, self._coordinators[group])
        return {(tp.topic, tp.partition): meta.offset for tp, meta in found.items()}

    async def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()
