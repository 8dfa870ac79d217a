"""`crm-redrive --service cases`: put dead letters back on the topics they came from.

Once the cause is fixed (a bug deployed, a missing reference arrived), the messages in
`crm.dlq.<service>` are republished to their original topic with their original key.
The re-drive consumer group remembers how far it got, so running it twice does not
republish the same dead letter twice; consumers are idempotent anyway.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from crm_contracts.topics import dlq_topic

ORIGINAL_TOPIC = "crm-dlq-original-topic"


@dataclass
class RedriveResult:
    redriven: int
    skipped: int


async def redrive(bootstrap: str, service: str, *, only_topic: str | None = None,
                  dry_run: bool = False, limit: int | None = None) -> RedriveResult:
    source = dlq_topic(service)
    consumer = AIOKafkaConsumer(
        source, bootstrap_servers=bootstrap, group_id=f"crm-redrive-{service}",
        enable_auto_commit=False, auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                max_request_size=8 * 1024 * 1024)
    await consumer.start()
    await producer.start()
    result = RedriveResult(0, 0)
    try:
        # Wait for the group assignment, then read up to the end offsets known now.
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=200)
        end = await consumer.end_offsets(list(consumer.assignment()))
        while True:
            positions = {tp: await consumer.position(tp) for tp in consumer.assignment()}
            if all(positions[tp] >= end.get(tp, 0) for tp in positions):
                break
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            done: dict[TopicPartition, int] = {}
            for tp, records in batch.items():
                for record in records:
                    done[TopicPartition(tp.topic, tp.partition)] = record.offset + 1
                    headers = {k: v for k, v in (record.headers or ())}
                    target = headers.get(ORIGINAL_TOPIC, b"").decode()
                    if not target or (only_topic and target != only_topic):
                        result.skipped += 1
                        continue
                    if not dry_run:
                        kept = [(k, v) for k, v in headers.items() if not k.startswith("crm-dlq-")]
                        kept.append(("crm-redriven-from", f"{source}/{record.partition}/{record.offset}".encode()))
                        await producer.send_and_wait(target, record.value, key=record.key, headers=kept)
                    result.redriven += 1
                    if limit is not None and result.redriven >= limit:
                        break
            if done and not dry_run:
                await consumer.commit(done)
            if limit is not None and result.redriven >= limit:
                break
        return result
    finally:
        await producer.stop()
        await consumer.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="crm-redrive", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--service", required=True)
    parser.add_argument("--topic", help="only dead letters that came from this topic")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    args = parser.parse_args(argv)
    result = asyncio.run(redrive(args.bootstrap, args.service, only_topic=args.topic,
                                 dry_run=args.dry_run, limit=args.limit))
    verb = "would re-drive" if args.dry_run else "re-drove"
    print(f"crm-redrive: {verb} {result.redriven} dead letters of {args.service} ({result.skipped} skipped)")
