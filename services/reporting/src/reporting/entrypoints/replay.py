"""Reading every topic into one generation of read models with that generation's consumer
group: the rebuild's replay from the beginning, and a running service following the
generation a rebuild switched to (no restart needed).

Each generation has its own consumer group, so each generation's documents have one
writer per partition, whoever runs it: the group hands partitions over (the revoked side
stores what it holds first, and the new side starts from the last commit, whose records
the stored offsets make harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from crm_contracts.registry import ContractError, parse_event

from reporting import handlers
from reporting.adapters.buffer import BufferedGeneration
from reporting.adapters.store import ReadModels
from reporting.domain.apply import Record
from reporting.entrypoints.kafka import consumed_topics
from reporting.settings import ReportingSettings, consumer_group_for

log = logging.getLogger(__name__)
APPLY_EVERY = 20_000


class Replay:
    """One consumer of every topic, in the group of generation `name`, writing into it.

    `fresh`: the generation was just emptied and this is its only writer: everything is
    applied in memory and stored at `flush()`; partitions are read from their beginning
    (a rebuild started again after a crash must not resume from the last one's commits).
    Otherwise each batch is stored and committed before the next (a follower)."""

    def __init__(self, settings: ReportingSettings, models: ReadModels, name: str, *, fresh: bool,
                 max_records: int = 2000, client_id: str = "crm-reporting-replay", max_entities: int = 250_000,
                 session_timeout_ms: int = 45_000, rejoin_s: float = 60.0):
        self.name = name
        self.rejoin_s = rejoin_s  # how long the commit after storing waits for a dropped member
        self.gen = BufferedGeneration(models.generation(name), fresh=fresh, max_entities=max_entities)
        self.topics = list(consumed_topics())
        self.max_records = max_records
        self.skipped = 0
        self._pending: list[Record] = []
        self.next_offsets: dict[Any, int] = {}  # per partition, the next record to read
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers.split(","),
            group_id=consumer_group_for(settings, name), enable_auto_commit=False,
            auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024, client_id=client_id,
            # a loaded machine can hold the loop for seconds while a batch is applied: a
            # longer session keeps the member (a rebalance costs a replay its memory)
            session_timeout_ms=session_timeout_ms, heartbeat_interval_ms=max(100, session_timeout_ms // 15))
        self.consumer.subscribe(self.topics, listener=_Handover(self))

    async def start(self) -> None:
        await self.consumer.start()

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            if not self.gen.fresh:
                await self.flush()
        with contextlib.suppress(Exception):
            await self.consumer.stop()

    async def step(self, timeout_ms: int = 500) -> int:
        """One fetch, applied; the number of records read (0: nothing new)."""
        batches = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=self.max_records)
        records: list[Record] = []
        for tp, messages in batches.items():
            if messages:
                self.next_offsets[tp] = messages[-1].offset + 1
            for m in messages:
                try:
                    event, data = parse_event(m.value or b"")
                except ContractError:
                    self.skipped += 1  # the live consumer dead-lettered it: nothing to count
                    continue
                records.append(Record(m.topic, m.partition, m.offset, event, data))
        if self.gen.fresh:
            # Applied 20,000 at a time: a case's steps then mostly fall in one pass, which
            # computes its profile once per step instead of twice.
            self._pending.extend(records)
            records = self._pending if len(self._pending) >= APPLY_EVERY or not batches else []
        if records:
            await handlers.apply_replay(self.gen, records)
            self._pending = []
        if self.gen.fresh:
            self.gen.make_room()
            gc.freeze()  # millions of held documents: the cyclic collector need not walk them again
        elif records:
            await self.flush()
        return sum(len(v) for v in batches.values())

    async def flush(self) -> None:
        """Store everything held, then commit what was read: only what is stored."""
        whole = self.gen.fresh  # stored whole once, then written like a follower's
        await self.gen.flush()
        try:
            await self.consumer.commit()
        except (CommitFailedError, IllegalStateError) as exc:
            if not whole:
                raise  # a follower reads it again: what it stored makes that harmless
            await self._commit_after_rejoin(exc)

    async def _commit_after_rejoin(self, exc: Exception) -> None:
        # The replay's one commit, which lets the switch happen after minutes of replay, was
        # refused: the group dropped the member while it stored (a store that held the loop
        # past the session). aiokafka rejoins by itself; the offsets read are committed then
        # and the partitions put back there (the rejoined member would start from the last
        # commit, and there is none yet: from the beginning).
        offsets = dict(self.next_offsets)
        deadline = time.monotonic() + self.rejoin_s
        log.warning("replay of %s: commit refused (%s); again once the member has rejoined",
                    self.name, type(exc).__name__)
        while True:
            await asyncio.sleep(0.5)
            try:
                await self.consumer.commit(offsets)
                break
            except (CommitFailedError, IllegalStateError):
                if time.monotonic() >= deadline:
                    raise
        log.info("replay of %s: committed after the member rejoined", self.name)
        for tp, offset in offsets.items():
            self.consumer.seek(tp, offset)

    async def end_offsets(self) -> dict[Any, int]:
        await self.consumer.topics()
        tps = self._partitions()
        ends, starts = await asyncio.gather(self.consumer.end_offsets(tps), self.consumer.beginning_offsets(tps))
        return {tp: ends[tp] - starts[tp] for tp in tps}

    def _partitions(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t in self.topics for p in (self.consumer.partitions_for_topic(t) or ())]

    async def caught_up(self) -> bool:
        """Every partition of every topic is assigned to us and read to its end."""
        await self.consumer.topics()
        tps = self._partitions()
        if set(tps) - set(self.consumer.assignment()):
            return False
        ends = await self.consumer.end_offsets(tps)
        for tp in tps:
            if await self.consumer.position(tp) < ends[tp]:
                return False
        return True


class _Handover(ConsumerRebalanceListener):
    """Partitions move when a follower joins this generation's group (a replica noticed
    the switch): store what is held, then trust the cache no more. While a fresh
    generation is replayed nobody else writes it (nobody reads it yet): a rebalance then
    is our own member rejoining, which resumes where it was, memory intact."""

    def __init__(self, replay: Replay):
        self.replay = replay

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if not revoked or self.replay.gen.fresh:
            return  # fresh: what was read is held in memory, and read on from where it was
        with contextlib.suppress(Exception):
            await self.replay.gen.flush()
        self.replay.gen.forget()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if not assigned or not self.replay.gen.fresh:
            return
        unread = []
        for tp in assigned:
            if tp in self.replay.next_offsets:
                self.replay.consumer.seek(tp, self.replay.next_offsets[tp])
            else:  # not the last crashed run's commits: this generation starts empty
                unread.append(tp)
        if unread:
            # One reset for all: each call waits for a round of the fetcher, which a busy
            # fold makes about a second long, and the member sends no heartbeat until this
            # returns (one call a partition took 66 rounds, past the session timeout: the
            # group dropped the member and the rebuild's commit at the switch failed).
            await self.replay.consumer.seek_to_beginning(*unread)


async def follow_active(settings: ReportingSettings, models: ReadModels, started_with: str,
                        poll_s: float = 1.0, retire: Callable[[], Awaitable[None]] | None = None) -> None:
    """In a running service: while the active generation is not the one its consumers
    were started with (a rebuild switched), keep the active one current with a replay in
    that generation's group; runs until cancelled. Once such a replay has joined its group,
    `retire` stops the consumers of `started_with`: nobody reads that generation any more,
    and writing it would only cost the store. From then on any active generation,
    `started_with` included (a later rebuild into that name), is kept by a replay."""
    replay: Replay | None = None
    retired = retire is None  # nothing to stop: follow whatever is active
    try:
        while True:
            try:
                active = (await models.pointer())["generation"]
                if replay is not None and replay.name != active:
                    await replay.stop()
                    replay = None
                if replay is None and (active != started_with or (retired and retire is not None)):
                    log.info("following generation %s", active)
                    replay = Replay(settings, models, active, fresh=False, max_records=500,
                                    client_id="crm-reporting-follower")
                    await replay.start()
                    if not retired and retire is not None:
                        await retire()
                        retired = True
                        log.info("consumers of generation %s stopped", started_with)
                if replay is not None:
                    await replay.step(timeout_ms=int(poll_s * 1000))  # waits up to poll_s itself
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store or Kafka away: try again, the offsets make it harmless
                log.warning("following the active generation failed: %s", exc)
                if replay is not None:
                    await replay.stop()
                    replay = None
            await asyncio.sleep(poll_s)
    finally:
        if replay is not None:
            await replay.stop()
