"""`reporting rebuild`: replay every topic from the beginning into a fresh generation of
read models, with a progress bar, and switch the API over once it has caught up.

Each generation has its own consumer group (`crm-reporting` for g1, `crm-reporting-g2`
...), so each generation's documents have one writer per partition. After the switch the
command keeps the new generation current until it is stopped; restart reporting then (its
consumers join the new generation's group and take the partitions over from where the
command committed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from crm_contracts.registry import ContractError, parse_event
from crm_runtime.mongo import create_client
from tqdm import tqdm

from reporting import handlers
from reporting.adapters.buffer import BufferedGeneration
from reporting.adapters.store import ReadModels, next_generation
from reporting.domain.apply import Record
from reporting.entrypoints.kafka import consumed_topics
from reporting.settings import ReportingSettings, consumer_group_for


@dataclass
class RebuildResult:
    generation: str
    previous: str
    events: int
    skipped: int
    seconds: float
    switched: bool

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


async def rebuild(settings: ReportingSettings, *, generation: str | None = None, progress: bool = True,
                  follow_s: float = 0.0, max_records: int = 2000, switch: bool = True,
                  flush_every: int = 50_000, flush_s: float = 5.0) -> RebuildResult:
    """Replay into `generation` (default: the one after the active one); switch when the
    lag is 0; then keep following for `follow_s` seconds (forever if negative)."""
    mongo = create_client(settings.mongodb_url, app_name="crm-reporting-rebuild")
    models = ReadModels(mongo[settings.database_name])
    previous = (await models.pointer())["generation"]
    name = generation or next_generation(previous)
    await models.generation(name).drop()  # fresh read models; the group's offsets are new with its name
    gen = BufferedGeneration(models.generation(name), fresh=True)
    topics = list(consumed_topics())
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers.split(","),
        group_id=consumer_group_for(settings, name), enable_auto_commit=False, auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024, client_id="crm-reporting-rebuild")
    consumer.subscribe(topics, listener=_Handover(gen, consumer))
    await consumer.start()
    started = time.monotonic()
    events = skipped = 0
    switched = False
    bar = tqdm(total=0, unit="ev", unit_scale=True, desc=f"rebuild {name}", disable=not progress,
               smoothing=0.1, dynamic_ncols=True)
    try:
        await models.meta.replace_one({"_id": "rebuild"}, {
            "_id": "rebuild", "generation": name, "previous": previous, "state": "replaying",
            "started_at": datetime.now(UTC).isoformat()}, upsert=True)
        ends = await _end_offsets(consumer, topics)
        bar.total = sum(ends.values())
        follow_until: float | None = None
        pending, flushed_at = 0, time.monotonic()
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=max_records)
            records: list[Record] = []
            for _tp, messages in batches.items():
                for m in messages:
                    try:
                        event, data = parse_event(m.value or b"")
                    except ContractError:
                        skipped += 1  # the live consumer dead-lettered it: nothing to count
                        continue
                    records.append(Record(m.topic, m.partition, m.offset, event, data))
            if records:
                await handlers.apply_batch(gen, records)  # type: ignore[arg-type]  # in memory
            n = sum(len(v) for v in batches.values())
            pending += n
            if pending and (pending >= flush_every or not batches or time.monotonic() - flushed_at >= flush_s):
                await gen.flush()
                await consumer.commit()  # only what is stored
                events += pending
                bar.update(pending)
                pending, flushed_at = 0, time.monotonic()
            if not switched and not batches and await _caught_up(consumer, topics):
                if switch:
                    await models.switch(name, previous=previous, switched_at=datetime.now(UTC).isoformat())
                    await models.meta.update_one({"_id": "rebuild"}, {"$set": {"state": "switched"}})
                switched = True
                follow_until = time.monotonic() + follow_s if follow_s >= 0 else None
                bar.set_postfix_str("caught up: switched" if switch else "caught up")
            if switched and follow_until is not None and time.monotonic() >= follow_until:
                break
            if not switched and not batches:
                bar.total = max(bar.total or 0, sum((await _end_offsets(consumer, topics)).values()))
                bar.refresh()
    finally:
        bar.close()
        with contextlib.suppress(Exception):
            await consumer.stop()
        await mongo.close()
    return RebuildResult(name, previous, events, skipped, time.monotonic() - started, switched)


class _Handover(ConsumerRebalanceListener):
    """Once reporting restarts on the new generation its consumers join this group and take
    partitions: store what is buffered (the new owner replays from the last commit; the
    stored offsets skip what is already applied), and trust the cache no more."""

    def __init__(self, gen: BufferedGeneration, consumer: AIOKafkaConsumer):
        self.gen, self.consumer = gen, consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if revoked:
            await self.gen.flush()
            self.gen.forget()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        pass


async def _end_offsets(consumer: AIOKafkaConsumer, topics: list[str]) -> dict[Any, int]:
    await consumer.topics()
    tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
    ends, starts = await asyncio.gather(consumer.end_offsets(tps), consumer.beginning_offsets(tps))
    return {tp: ends[tp] - starts[tp] for tp in tps}


async def _caught_up(consumer: AIOKafkaConsumer, topics: list[str]) -> bool:
    """Every partition of every topic is assigned to us and read to its end."""
    await consumer.topics()
    tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
    assigned = consumer.assignment()
    if set(tps) - set(assigned):
        return False
    ends = await consumer.end_offsets(tps)
    for tp in tps:
        if await consumer.position(tp) < ends[tp]:
            return False
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="reporting", description="Reporting's operations.")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("rebuild", help="replay every topic into fresh read models and switch over")
    cmd.add_argument("--generation", help="name of the new generation (default: the next one)")
    cmd.add_argument("--follow", type=float, default=-1,
                     help="seconds to keep following after the switch (default: until Ctrl-C)")
    cmd.add_argument("--no-switch", action="store_true", help="replay only; leave the API where it is")
    args = parser.parse_args(argv)
    settings = ReportingSettings()
    try:
        result = asyncio.run(rebuild(settings, generation=args.generation, follow_s=args.follow,
                                     switch=not args.no_switch))
    except KeyboardInterrupt:
        print("stopped")
        return
    print(f"generation {result.generation} (was {result.previous}): {result.events} events in "
          f"{result.seconds:.1f}s ({result.events_per_s:.0f}/s), {result.skipped} not of the contract, "
          f"{'switched' if result.switched else 'not switched'}")
