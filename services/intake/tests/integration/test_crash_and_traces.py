"""Intake as a real process: killed mid-stream it loses nothing, and a contact can be
followed from the request (or the partner's Kafka message) to the topic by its trace id,
in the Kafka headers and in the service's JSON log lines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import smtplib
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from crm_contracts import topics
from crm_devstack.servers import free_port
from crm_runtime.testing import Seen, event_of_type, eventually, make_event, unique_suffix, wait_for_messages
from pymongo import AsyncMongoClient

from .conftest import JWT_SECRET, token

pytestmark = pytest.mark.stack
RECEIVED = "crm.intake.contact.received.v1"
HOTLINE_CALL = "crm.partner.hotline.call-recorded.v1"
UVICORN = Path(sys.executable).with_name("uvicorn")
REPO = Path(__file__).resolve().parents[4]


@dataclass
class IntakeProcess:
    """`uvicorn --factory intake.bootstrap:create_app` in a child process, stdout kept in a file."""

    env: dict[str, str]
    log_path: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 45) -> None:
        self.port = free_port()
        out = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(UVICORN), "--factory", "intake.bootstrap:create_app", "--host", "127.0.0.1",
             "--port", str(self.port), "--no-access-log"],
            env=self.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"intake exited with {self.proc.returncode}:\n{self.output()[-4000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/health/ready")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise AssertionError(f"intake not ready after {timeout}s:\n{self.output()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, no offset is committed, the relay stops wherever it is."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_lines(self) -> list[dict[str, Any]]:
        """Every line the service wrote must be one JSON object."""
        lines = []
        for raw in self.output().splitlines():
            if not raw.strip():
                continue
            try:
                lines.append(json.loads(raw))
            except ValueError:
                raise AssertionError(f"not a JSON log line: {raw[:300]}") from None
        return lines


@contextlib.asynccontextmanager
async def intake_process(stack: Any, tmp_path: Path, **extra_env: str) -> AsyncIterator[IntakeProcess]:
    suffix = unique_suffix()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CRM_"))}
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap, "MONGODB_URL": stack.mongodb_url,
        "CRM_DATABASE_SUFFIX": suffix, "CRM_JWT_SECRET": JWT_SECRET,
        # A dead replica's relay lease is taken over within two TTLs.
        "CRM_LEASE_TTL_S": "2", "CRM_OUTBOX_POLL_INTERVAL_S": "0.1", "PYTHONUNBUFFERED": "1",
        **extra_env,
    })
    service = IntakeProcess(env, tmp_path / f"intake{suffix}.log")
    try:
        yield service
    finally:
        service.stop()


def database(stack: Any, service: IntakeProcess) -> Any:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.mongodb_url)
    return client, client[f"crm_intake{service.env['CRM_DATABASE_SUFFIX']}"]


async def read_topic(bootstrap: str, topic: str, predicate: Callable[[Seen], bool]) -> list[Seen]:
    """Everything on `topic` up to its current end that matches `predicate`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        for _ in range(50):
            if partitions:
                break
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
            await asyncio.sleep(0.1)
        assert partitions, f"topic {topic} does not exist"
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        found: list[Seen] = []
        while True:
            positions = {tp: await consumer.position(tp) for tp in tps}
            if all(positions[tp] >= end[tp] for tp in tps):
                break
            for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                for r in records:
                    seen = Seen(r.value or b"", r.key, {k: v.decode(errors="replace") for k, v in r.headers or ()},
                                r.partition, r.offset)
                    if predicate(seen):
                        found.append(seen)
        return found
    finally:
        await consumer.stop()


def phone_forms(phone: str) -> list[str]:
    """How a phone number could appear in clear: as typed, with +86, or split by spaces/dashes."""
    return [phone, f"{phone[:3]} {phone[3:7]} {phone[7:]}", f"{phone[:3]}-{phone[3:7]}-{phone[7:]}"]


def assert_logs_are_clean(lines: list[dict[str, Any]], raw: str, phones: list[str]) -> None:
    assert lines, "the service wrote no log lines"
    missing = [line for line in lines if "trace_id" not in line]
    assert not missing, f"log lines without a trace_id field: {missing[:3]}"
    for phone in phones:
        for form in phone_forms(phone):
            assert form not in raw, f"a caller's phone number is in the log in clear: {form}"


# ---------------------------------------------------------------------- killed mid-stream


CALLS = 500


async def test_intake_killed_mid_stream_and_restarted_loses_nothing(stack, tmp_path):
    run = uuid.uuid4().hex[:8]
    call_ids = [f"crash-{run}-{i:03d}" for i in range(CALLS)]
    phones = [f"139{int(run[:6], 16) % 10**4:04d}{i:04d}" for i in range(CALLS)]
    async with intake_process(stack, tmp_path) as service:
        client, db = database(stack, service)
        contacts = db["contacts"]
        try:
            await service.start()
            producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
            await producer.start()
            try:
                sends = []
                for call_id, phone in zip(call_ids, phones, strict=True):
                    event = make_event(HOTLINE_CALL, {
                        "call_id": call_id, "caller_phone": phone, "started_at": "2026-03-01T09:30:00+08:00",
                        "duration_s": 120, "summary": f"业主来电反映{call_id}号问题：地下车库漏水，请尽快维修，回电{phone}"},
                        subject=call_id)
                    sends.append(await producer.send(topics.PARTNER_HOTLINE, event.model_dump_json().encode(),
                                                     key=call_id.encode()))
                await asyncio.gather(*sends)
            finally:
                await producer.stop()

            # Kill it once it has recorded some of the calls but not all of them.
            mine = {"source_ref": {"$in": call_ids}}
            recorded = await eventually(lambda: _count_at_least(contacts, mine, 25), timeout=40, interval=0.02)
            service.kill()
            at_kill = await contacts.count_documents(mine)
            assert recorded <= at_kill < CALLS, f"{at_kill} of {CALLS} recorded when killed: not mid-stream"

            await service.start()
            await eventually(lambda: _count_at_least(contacts, mine, CALLS), timeout=90, interval=1)

            # Every call reaches the topic. A relay killed between publishing and removing
            # publishes a copy again (at-least-once); a copy has the same CloudEvent id.
            wanted = set(call_ids)

            async def all_on_topic() -> list[Seen] | None:
                seen = await read_topic(stack.bootstrap, topics.INTAKE_CONTACTS, lambda s: event_of_type(RECEIVED)(s)
                                        and s.json()["data"]["source_ref"] in wanted)
                return seen if {s.json()["data"]["source_ref"] for s in seen} == wanted else None

            try:
                # A revision claim left by the killed relay is broken after 30 s.
                seen = await eventually(all_on_topic, timeout=45, interval=1)
            except AssertionError:
                raise AssertionError(await stuck_outboxes(db, mine)) from None
            # The relay clears a flag after Kafka acknowledged the publish: a reader can see the
            # events on the topic first (and a claim left by the killed relay goes stale in 10 s).
            async def none_pending() -> bool:
                return await contacts.count_documents({**mine, "outbox_pending": True}) == 0
            try:
                await eventually(none_pending, timeout=30, interval=0.5)
            except AssertionError:
                raise AssertionError(await stuck_outboxes(db, mine)) from None

            # Exactly one contact per call id, and nothing else in the database.
            docs = [d async for d in contacts.find(mine, {"source_ref": 1})]
            assert sorted(d["source_ref"] for d in docs) == sorted(call_ids)
            assert await contacts.count_documents({}) == CALLS

            # Exactly one ContactReceived per call: one event id, naming that call's contact.
            ids: dict[str, set[str]] = {}
            contact_ids: dict[str, set[str]] = {}
            for s in seen:
                event = s.json()
                ids.setdefault(event["data"]["source_ref"], set()).add(event["id"])
                contact_ids.setdefault(event["data"]["source_ref"], set()).add(event["data"]["contact_id"])
            assert all(len(v) == 1 for v in ids.values()), {k: v for k, v in ids.items() if len(v) > 1}
            assert {d["source_ref"]: {d["_id"]} for d in docs} == contact_ids

            service.stop()
            lines = service.log_lines()
            assert_logs_are_clean(lines, service.output(), phones)
            recorded_lines = [line for line in lines if line.get("message") == "contact recorded"]
            assert recorded_lines and all(line["trace_id"] and line["contact_id"] for line in recorded_lines)
        finally:
            await client.close()


async def _count_at_least(collection: Any, query: dict[str, Any], n: int) -> int:
    count = await collection.count_documents(query)
    return count if count >= n else 0


async def stuck_outboxes(db: Any, query: dict[str, Any]) -> str:
    """Why events did not reach the topic: the contacts still holding them, each with its
    relay marker and any claim on its next revision (crm_runtime.outbox / .revisions)."""
    stuck = [d async for d in db["contacts"].find({**query, "outbox_pending": True}, {"source_ref": 1, "rev": 1})]
    lines = [f"{len(stuck)} contacts still hold their ContactReceived in the outbox:"]
    for d in stuck[:10]:
        marker = await db["outbox_markers"].find_one({"_id": f"contacts|{d['_id']}"})
        claim = await db["revision_claims"].find_one({"_id": f"contacts/{d['_id']}@{d.get('rev', 0) + 1}"})
        lines.append(f"  {d['source_ref']} ({d['_id']}): rev {d.get('rev')}, relay marker: {'yes' if marker else 'none'}, "
                     f"claim on the next revision: {claim['at'] if claim else 'none'}")
    return "\n".join(lines)


# ---------------------------------------------------------------------- traces


def traceparent() -> tuple[str, str]:
    trace_id = uuid.uuid4().hex
    return trace_id, f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"


def trace_id_of(seen: Seen) -> str | None:
    match = re.fullmatch(r"00-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}", seen.headers.get("traceparent", ""))
    return match.group(1) if match else None


async def test_a_contact_is_followed_by_its_trace_from_the_request_or_the_partner_event_to_the_topic(
        stack, tmp_path):
    smtp_port = free_port()
    async with intake_process(stack, tmp_path, CRM_INTAKE_SMTP_PORT=str(smtp_port)) as service:
        await service.start()
        http_phone, call_phone = "13912340001", "13712340002"

        # 1. The front desk records a visit: the caller's trace runs on to the ContactReceived.
        http_trace, header = traceparent()
        async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
            r = await client.post("/v1/contacts", headers={**token(), "traceparent": header}, json={
                "channel": "front_desk", "region": "shenzhen", "subject": "卫生间漏水",
                "body": f"3栋1201卫生间天花板漏水，请尽快派人维修，电话{http_phone}",
                "customer": {"name": "王芳", "phone": http_phone}})
        assert r.status_code == 202, r.text
        contact_id = r.json()["contact_id"]
        [seen] = await wait_for_messages(stack.bootstrap, topics.INTAKE_CONTACTS,
                                         event_of_type(RECEIVED, contact_id=contact_id), timeout=30)
        assert trace_id_of(seen) == http_trace, seen.headers

        # 2. A partner's hotline event with a trace: the consumer continues it.
        call_trace, header = traceparent()
        call_id = f"call-{uuid.uuid4().hex[:8]}"
        event = make_event(HOTLINE_CALL, {
            "call_id": call_id, "caller_phone": f"+86 {call_phone[:3]} {call_phone[3:7]} {call_phone[7:]}",
            "started_at": "2026-03-01T09:30:00+08:00", "duration_s": 95,
            "summary": f"业主投诉物业服务态度差，要求回电{call_phone}"}, subject=call_id)
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topics.PARTNER_HOTLINE, event.model_dump_json().encode(),
                                         key=call_id.encode(), headers=[("traceparent", header.encode())])
        finally:
            await producer.stop()
        [seen] = await wait_for_messages(stack.bootstrap, topics.INTAKE_CONTACTS,
                                         event_of_type(RECEIVED, source_ref=call_id), timeout=30)
        assert trace_id_of(seen) == call_trace, seen.headers
        call_contact_id = seen.json()["data"]["contact_id"]

        # 3. An e-mailed letter arrives with no trace: it starts one, and its log line and
        #    its ContactReceived share it.
        sender = "zhao.lei@example.cn"
        message = EmailMessage()
        message["From"] = f"Zhao Lei <{sender}>"
        message["To"] = "shenzhen@letters.example.cn"
        message["Subject"] = "关于车位产权的投诉"
        message["Message-ID"] = f"<{uuid.uuid4().hex}@mail.example.cn>"
        message.set_content("销售时承诺的产权车位至今没有办理，要求书面答复。联系电话 13612340003")

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
                smtp.send_message(message)

        await asyncio.to_thread(send)
        [seen] = await wait_for_messages(stack.bootstrap, topics.INTAKE_CONTACTS, event_of_type(
            RECEIVED, source_ref=message["Message-ID"].strip("<>")), timeout=30)
        letter_trace, letter_contact_id = trace_id_of(seen), seen.json()["data"]["contact_id"]
        assert letter_trace is not None, seen.headers

        # The logs: JSON, a trace_id on every line, each contact's line in its trace, and
        # no caller's phone number or e-mail address in clear.
        service.stop()
        lines = service.log_lines()
        assert_logs_are_clean(lines, service.output(), [http_phone, call_phone, "13612340003"])
        assert sender not in service.output()
        recorded = {line["contact_id"]: line for line in lines if line.get("message") == "contact recorded"}
        assert recorded[contact_id]["trace_id"] == http_trace, recorded[contact_id]
        assert recorded[call_contact_id]["trace_id"] == call_trace, recorded[call_contact_id]
        assert recorded[letter_contact_id]["trace_id"] == letter_trace, recorded[letter_contact_id]
