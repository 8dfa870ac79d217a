"""Killed with SIGKILL between the provider's acceptance and the ledger update, the service
sends nothing twice: the restarted one finds the entry marked `sending`, marks it
unconfirmed for the receipts to settle, and never calls the provider for it again."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from crm_contracts import topics
from crm_runtime.mongo import create_client
from crm_runtime.testing import eventually, produce, unique_suffix
from notifications.adapters.ledger import message_id

from .conftest import JWT_SECRET, case_data, case_event, customer, start_group_at_end, upsert

pytestmark = pytest.mark.stack
HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(stack, suffix: str, provider_log: Path, kill: bool) -> subprocess.Popen:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap, "MONGODB_URL": stack.mongodb_url,
           "CRM_DATABASE_SUFFIX": suffix, "CRM_CONSUMER_GROUP": f"crm-notifications{suffix}",
           "CRM_JWT_SECRET": JWT_SECRET, "CRM_OUTBOX_POLL_INTERVAL_S": "0.1", "CRM_TIMER_POLL_INTERVAL_S": "0.2",
           "CRM_NOTIFICATIONS_GATEWAY_FACTORY": "crash_service:gateways", "PROVIDER_LOG": str(provider_log),
           "KILL_AFTER_ACCEPT": "1" if kill else "0",
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(HERE / "crash_service.py"), str(_free_port())], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _accepted(provider_log: Path) -> list[dict]:
    if not provider_log.exists():
        return []
    return [json.loads(line) for line in provider_log.read_text(encoding="utf-8").splitlines() if line]


async def test_killed_between_acceptance_and_ledger_update_sends_nothing_twice(stack, tmp_path):
    suffix = unique_suffix()
    provider_log = tmp_path / "provider.jsonl"
    client = create_client(stack.mongodb_url, app_name="crash-test")
    ledger = client[f"crm_notifications{suffix}"]["ledger"]
    c = customer()
    data = case_data(c["customer_id"])
    mid = message_id(f"ack:{data['case_id']}", c["customer_id"], "sms")
    await start_group_at_end(stack.bootstrap, f"crm-notifications{suffix}")
    first = _start(stack, suffix, provider_log, kill=True)
    second = None
    try:
        await upsert(stack, c)
        contacts = client[f"crm_notifications{suffix}"]["contacts"]
        await eventually(lambda: contacts.find_one({"_id": c["customer_id"]}), timeout=120)
        opened = await case_event(stack, "opened", {**data, "channel": "hotline", "kind_hint": "complaint"})
        await eventually(lambda: first.poll() is not None, timeout=120)
        assert first.returncode == -9
        assert [a["message_id"] for a in _accepted(provider_log)] == [mid]
        assert (await ledger.find_one({"_id": mid}))["status"] == "sending"  # the ledger never heard

        second = _start(stack, suffix, provider_log, kill=False)

        async def unconfirmed():
            doc = await ledger.find_one({"_id": mid})
            return doc if doc and doc["status"] == "unconfirmed" else None

        doc = await eventually(unconfirmed, timeout=120)
        assert "not re-sent" in doc["trail"][-1]["note"]
        # The cause arrives once more, and a later event of the case proves it was consumed.
        await produce(stack.bootstrap, topics.CASES_CASES, opened)
        await case_event(stack, "progress-reported", {**data, "message_to_customer": "已安排维修"})
        await eventually(lambda: len(_accepted(provider_log)) >= 2, timeout=60)
        accepted = [a["message_id"] for a in _accepted(provider_log)]
        assert accepted.count(mid) == 1 and len(accepted) == 2
        assert "已安排维修" in _accepted(provider_log)[1]["body"]
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(60)
                except subprocess.TimeoutExpired:  # a slow graceful stop on a busy machine
                    process.kill()
                    process.wait(10)
        await client.drop_database(f"crm_notifications{suffix}")
        await client.close()
