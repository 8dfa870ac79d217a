"""Notifications: a milestone broadcast to every owner of one project, and a region's
customer archive absorbed into the contact directory.

- **Broadcast**: N owners of one project (20 buildings) are in the directory; one
  `milestone-reached` event for the whole project. Measured: the time from producing the
  event until every owner's message is planned (a ledger entry each, the broadcast stored),
  and the rate at which the messages are then handed to the SMS gateway against the rate
  the service is configured for (`CRM_NOTIFICATIONS_SMS_RATE_PER_S`), and that no message
  was handed over twice. The gateway records what it is handed in the benchmark's process
  (single and batch send, as the real SMS client has); the service runs in-process with its
  clock set to a weekday morning, so the send window is open. Sending goes a group at a time
  (a tenth of a second of the rate: 20 messages at 200/s), 16 groups in flight.
- **Where the time goes**: every store command the service sends is counted (pymongo
  command monitoring) while planning, while sending (the outbox relay's included) and while
  absorbing; the table gives them per message. Before the group path, sending cost 19.3
  commands per message (6.2 ledger reads, 3 revision claims, 3 ledger updates, 2 outbox
  marker inserts, the cap read and `$inc`, the relay's own per-message round trips) and
  reached 7 to 36 % of the rate; planning compiled the template once per owner. The
  group path then reached 85 % (3.0 commands per message): a chunk now keeps its members
  as planned, so sending reads no ledger entry (its contact's current consent and address
  are still read), a group's ledger marks go in one command, and the pacer makes up a
  late wake-up of a busy event loop instead of losing that time for good.
- **Directory**: M `customer.upserted` events on the topic, absorbed by the service (batches
  of 500) next to a raw aiokafka consume of the same topic and a raw store bulk insert
  (`insert_many` of 500) of the same number of documents, in the same run.

Sizes: BENCH_NOTIFICATIONS_OWNERS (20,000), BENCH_NOTIFICATIONS_DIRECTORY (1,000,000),
BENCH_NOTIFICATIONS_RATE (200 messages/s). The machine is shared (2 CPUs, other engineers'
tests running): the load average is recorded with the run.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from crm_contracts import topics
from crm_contracts.envelope import new_event
from crm_runtime.kafka import encode_event
from crm_runtime.mongo import create_client
from pymongo import monitoring

from bench.common import (
    Headline,
    Section,
    Stopwatch,
    chinese_name,
    committed_total,
    mobile,
    num,
    per_s,
    raw_consume,
    raw_produce,
    table,
)

TZ = ZoneInfo("Asia/Shanghai")
MORNING = datetime(2026, 12, 1, 10, 0, tzinfo=TZ)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] notifications: {message}", file=sys.stderr, flush=True)


def size_from_env(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value.replace("_", "")) if value else default


class StoreOps(monitoring.CommandListener):
    """Counts the store commands the service sends (pymongo command monitoring), per phase."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def started(self, event: Any) -> None:
        coll = event.command.get(event.command_name)
        key = f"{event.command_name} {coll}" if isinstance(coll, str) else event.command_name
        self.counts[key] = self.counts.get(key, 0) + 1

    def succeeded(self, event: Any) -> None:
        return None

    def failed(self, event: Any) -> None:
        return None

    def take(self) -> dict[str, int]:
        out, self.counts = self.counts, {}
        return out


def ops_text(counts: dict[str, int], per: int) -> str:
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:8]
    total = sum(counts.values())
    return f"{total / max(1, per):.1f} per message: " + ", ".join(f"{k} {v / max(1, per):.1f}" for k, v in top)


class RecordingSms:
    def __init__(self) -> None:
        self.handed: list[tuple[float, str]] = []

    async def send(self, message: Any) -> Any:
        from notifications.adapters.gateways import SendResult

        self.handed.append((time.perf_counter(), message.message_id))
        return SendResult(accepted=True, provider_ref=message.message_id)

    async def send_batch(self, messages: list[Any]) -> list[Any]:
        """As the SMS gateway's batch send (dysmsapi SendBatchSms): one call, a result each."""
        return [await self.send(m) for m in messages]

    async def close(self) -> None:
        return None


def customer_event(rng: random.Random, n: int, project: str | None, buildings: int) -> tuple[bytes, bytes]:
    cid = f"bench-{n:07d}"
    # One home per owner (the household cap is per home: shared homes would defer the broadcast).
    units = [{"project": project, "building": str(1 + n % buildings), "unit": str(1 + n // buildings)}] \
        if project else []
    data = {"customer_id": cid, "name": chinese_name(rng), "phones": [mobile(rng)],
            "consent": {"sms": True, "email": False, "letter": True}, "units": units}
    event = new_event("crm.partner.customer.upserted.v1", source="/partners/sales-crm", subject=cid,
                      region="shenzhen", data=data)
    return cid.encode(), encode_event(event)


async def run(stack: Any, quick: bool) -> Section:
    from aiokafka.admin import AIOKafkaAdminClient
    from crm_runtime.testing import running_app
    from notifications.bootstrap import create_app
    from notifications.settings import NotificationsSettings

    owners = size_from_env("BENCH_NOTIFICATIONS_OWNERS", 2_000 if quick else 20_000)
    directory = max(owners, size_from_env("BENCH_NOTIFICATIONS_DIRECTORY", 100_000 if quick else 1_000_000))
    rate = float(size_from_env("BENCH_NOTIFICATIONS_RATE", 200))
    clock = Stopwatch()
    section = Section("notifications", "Notifications: a milestone broadcast and the contact directory",
                      sizes=f"{owners:,} owners, {directory:,} customers, SMS at {rate:,.0f}/s")
    rng = random.Random(7)
    project = f"bench-{uuid.uuid4().hex[:6]}"
    progress(f"producing {directory:,} customer.upserted ({owners:,} owners of one project)")
    messages = [customer_event(rng, n, project if n < owners else None, 20) for n in range(directory)]
    await raw_produce(stack.bootstrap, topics.PARTNER_CUSTOMERS, messages)
    del messages

    suffix = "_bench" + uuid.uuid4().hex[:6]
    group = f"crm-notifications{suffix}"
    settings = NotificationsSettings(KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap, MONGODB_URL=stack.mongodb_url,
                                     CRM_DATABASE_SUFFIX=suffix, CRM_CONSUMER_GROUP=group,
                                     CRM_NOTIFICATIONS_SMS_RATE_PER_S=rate, CRM_TIMER_POLL_INTERVAL_S=0.2,
                                     CRM_JWT_SECRET="bench-secret-of-at-least-thirty-two-bytes",
                                     CRM_LOG_LEVEL="WARNING")
    ops = StoreOps()
    monitoring.register(ops)  # before the app's client is made: it counts only the service's commands
    app = create_app(settings)
    sms = RecordingSms()
    deps = app.state.ctx.app_deps
    began = time.monotonic()

    def morning() -> datetime:
        return MORNING + timedelta(seconds=time.monotonic() - began)

    deps.gateways["sms"] = sms
    deps.clock = morning
    app.state.ctx.timers.clock = morning
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap)
    await admin.start()
    try:
        absorb = Stopwatch()
        async with running_app(app):
            first_at: float | None = None
            while True:
                done = await committed_total(admin, group, topics.PARTNER_CUSTOMERS)
                if done and first_at is None:
                    first_at = absorb.s
                if done >= directory:
                    break
                await asyncio.sleep(0.5)
            absorb_s = absorb.s
            absorb_ops = ops.take()
            progress(f"directory absorbed {directory:,} in {absorb_s:.1f} s")

            plan = Stopwatch()
            milestone = new_event("crm.partner.project.milestone-reached.v1", source="/partners/projects",
                                  subject=project, region="shenzhen", data={
                                      "milestone_id": "bench", "project": project, "project_name": "碧水湾",
                                      "milestone": "topped_out", "occurred_at": (morning() - timedelta(days=1)).isoformat()})
            await raw_produce(stack.bootstrap, topics.PARTNER_PROJECTS, [(project.encode(), encode_event(milestone))])
            while (b := await deps.ledger.broadcast(milestone.id)) is None:
                await asyncio.sleep(0.2)
            plan_s = plan.s
            plan_ops = ops.take()
            load_at_plan = os.getloadavg()[0]
            progress(f"{b['total']:,} messages planned in {plan_s:.1f} s; sending at {rate:,.0f}/s")
            while len(sms.handed) < owners and plan.s < plan_s + owners / rate * 3 + 120:
                await asyncio.sleep(1)
                if int(plan.s) % 10 == 0:
                    progress(f"{len(sms.handed):,} handed to the SMS gateway")
                if os.environ.get("BENCH_DUMP_TASKS") and int(plan.s) % 30 == 0:
                    for task in asyncio.all_tasks():
                        task.print_stack(limit=6, file=sys.stderr)
            send_total_s = plan.s
            send_ops = ops.take()
            load_at_sent = os.getloadavg()[0]
            # The last chunk is tallied just after its last hand-over: wait for the broadcast's end.
            for _ in range(120):
                final = await deps.ledger.progress(milestone.id) or {}
                if final.get("status") == "done":
                    break
                await asyncio.sleep(0.5)
            counts = final.get("counts", {})
    finally:
        await admin.close()
    handed = len(sms.handed)
    distinct = len({mid for _, mid in sms.handed})
    span = sms.handed[-1][0] - sms.handed[0][0] if handed > 1 else 0.0
    sent_rate = per_s(handed - 1, span)

    progress("raw consume and raw bulk insert of the same size")
    raw = await raw_consume(stack.bootstrap, topics.PARTNER_CUSTOMERS, directory, f"bench-raw-{uuid.uuid4().hex[:6]}")
    mongo = create_client(stack.mongodb_url, app_name="bench-raw")
    scratch = mongo[f"bench_raw{suffix}"]["contacts"]
    insert = Stopwatch()
    for start in range(0, directory, 500):
        await scratch.insert_many([{"_id": f"raw-{n}", "region": "shenzhen", "name": "王芳", "phones": ["13800000000"],
                                    "consent": {"sms": True}, "units": []} for n in range(start, min(directory, start + 500))])
    insert_s = insert.s
    await mongo.drop_database(f"bench_raw{suffix}")
    await mongo.close()

    insert_rate = per_s(directory, insert_s)
    slower_name, slower_rate = min((("AIOKafkaConsumer, group, commit per getmany", raw.rate),
                                    ("raw store insert_many, 500 a command", insert_rate)), key=lambda x: x[1])
    section.headlines = [
        Headline("notifications: broadcast handed to SMS", "dispatcher (gate, ledger, outbox) under the rate limiter",
                 sent_rate, "the configured provider rate", rate, unit="messages/s"),
        # Issue 14's goal: at least 30 % of the slower of raw consume and raw store insert.
        Headline("notifications: directory absorbing customer.upserted", "directory (batches of 500)",
                 per_s(directory, absorb_s), slower_name, slower_rate),
    ]
    section.details = [
        *table(["measure", "value"], [
            ["owners of the project", f"{owners:,}"],
            ["planned (every owner's ledger entry stored) after the event", f"{plan_s:.1f} s (goal ≤ 30 s)"],
            ["handed to the SMS gateway", f"{handed:,} of {owners:,}, {distinct:,} distinct"
                                          f" ({'none twice' if handed == distinct else 'DUPLICATES'})"],
            ["sending rate / configured rate", f"{num(sent_rate)}/s / {num(rate)}/s = {per_s(sent_rate, rate):.0%}"
                                               " (goal ≥ 90 %)"],
            ["event to last hand-over", f"{send_total_s:.1f} s"],
            ["broadcast tallies after sending", ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())) or "-"],
            ["machine load average (1 min), when planned / when sent",
             f"{load_at_plan:.1f} / {load_at_sent:.1f} on 2 CPUs"],
            ["store commands while planning", ops_text(plan_ops, owners)],
            ["store commands while sending (with the outbox relay)", ops_text(send_ops, owners)],
            ["store commands while absorbing the directory", ops_text(absorb_ops, directory)],
            ["directory: customers absorbed", f"{directory:,} in {absorb_s:.1f} s = {num(per_s(directory, absorb_s))}/s"],
            ["raw aiokafka consume, same topic", f"{num(raw.rate)}/s"],
            ["raw store insert_many (500 a command)", f"{directory:,} in {insert_s:.1f} s = "
                                                      f"{num(per_s(directory, insert_s))}/s"],
            ["directory / the slower raw path", f"{per_s(per_s(directory, absorb_s), slower_rate):.0%} (goal ≥ 30 %)"],
        ]),
    ]
    section.about = __doc__ or ""
    section.seconds = clock.s
    return section
