"""Leases and timers against the real MongoDB-protocol server: one holder at a time,
take-over after a holder dies, and a timer fired once however many replicas run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from crm_runtime.leases import Lease, Timers
from crm_runtime.testing import eventually

pytestmark = pytest.mark.stack
HERE = Path(__file__).parent




async def test_only_one_replica_holds_a_lease_and_it_passes_on_after_expiry(db):
    a = Lease(db["leases"], "relay", "replica-a", ttl_s=1.0)
    b = Lease(db["leases"], "relay", "replica-b", ttl_s=1.0)
    assert await a.acquire_or_renew()
    assert not await b.acquire_or_renew()
    assert await a.acquire_or_renew()  # renewing our own lease works
    await asyncio.sleep(2.2)  # a stops renewing (it died); its pre-claimed slot runs out
    assert await b.acquire_or_renew()
    assert not await a.acquire_or_renew()


async def test_a_replica_killed_while_holding_a_lease_is_replaced_after_expiry(stack, db):
    holder = subprocess.Popen([sys.executable, str(HERE / "lease_holder.py"), stack.mongodb_url, db.name,
                               "sla-clock", "replica-doomed", "2"], stdout=subprocess.PIPE, text=True,
                              env=os.environ.copy())
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        successor = Lease(db["leases"], "sla-clock", "replica-next", ttl_s=2.0)
        assert not await successor.acquire_or_renew()
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        await eventually(successor.acquire_or_renew, timeout=10, interval=0.25)
        owners = {d["owner"] async for d in db["leases"].find({"name": "sla-clock"})}
        assert owners == {"replica-doomed", "replica-next"}  # the dead one's old slots, then ours
    finally:
        if holder.poll() is None:
            holder.kill()


async def test_two_replicas_running_the_same_timer_fire_it_exactly_once(db):
    fired: list[tuple[str, str]] = []

    def replica(name: str) -> Timers:
        async def on_sla(timer: dict) -> None:
            fired.append((name, timer["_id"]))
            await db["effects"].insert_one({"_id": f"breach:{timer['_id']}", "by": name})
        return Timers(db["timers"], name, {"sla_due": on_sla}, poll_interval_s=0.05)

    a, b = replica("a"), replica("b")
    await a.ensure_indexes()
    due = datetime.now(UTC) + timedelta(milliseconds=300)
    for i in range(20):
        await a.schedule(f"case-{i}:first_reply", "sla_due", due, {"case_id": f"case-{i}"})
    await a.start()
    await b.start()
    try:
        # A firing is recorded before its effect is stored and the timer marked done: wait
        # for those too, or stopping would cancel them on a slow machine.
        async def all_done() -> bool:
            return (len(fired) >= 20 and await db["effects"].count_documents({}) >= 20
                    and await db["timers"].count_documents({"state": "done"}) == 20)
        await eventually(all_done, timeout=15)
    finally:
        await a.stop()
        await b.stop()
    assert sorted(t for _, t in fired) == sorted(f"case-{i}:first_reply" for i in range(20))
    assert await db["effects"].count_documents({}) == 20
    assert await db["timers"].count_documents({"state": "done"}) == 20


async def test_a_timer_survives_a_restart_and_one_whose_firing_crashed_fires_again(db):
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    clock = [now]
    crashed = Timers(db["timers"], "crashing", claim_ttl_s=30, clock=lambda: clock[0])

    async def die(timer: dict) -> None:
        raise RuntimeError("replica died while firing")

    crashed.on("survey_due", die)
    await crashed.schedule("survey:1", "survey_due", now - timedelta(minutes=1), {"survey_id": "1"})
    assert await crashed.fire_due() == 0

    fired: list[str] = []

    async def send(timer: dict) -> None:
        fired.append(timer["_id"])

    restarted = Timers(db["timers"], "restarted", {"survey_due": send}, clock=lambda: clock[0])
    assert await restarted.fire_due() == 0  # still claimed by the crashed replica
    clock[0] = now + timedelta(seconds=31)
    assert await restarted.fire_due() == 1
    assert fired == ["survey:1"]
    assert await restarted.fire_due() == 0


async def test_a_claim_made_just_before_its_window_ends_still_holds_in_the_next(db):
    # Windows are aligned to the clock: replica a claims 0.1 s before a window ends and is
    # still firing when b polls 0.2 s later, in the next window. b must leave it alone.
    start = datetime(2026, 3, 2, 9, 0, 29, 900000, tzinfo=UTC)
    clock = [start]
    a = Timers(db["timers"], "a", claim_ttl_s=30, clock=lambda: clock[0])
    b = Timers(db["timers"], "b", claim_ttl_s=30, clock=lambda: clock[0])
    await a.schedule("case-x:first_reply", "sla_due", start - timedelta(seconds=1), {"case_id": "x"})
    timer = await db["timers"].find_one({"_id": "case-x:first_reply"})
    assert await a.claim(timer)
    clock[0] = start + timedelta(milliseconds=200)
    assert not await b.claim(timer)
    # Once a's claim is older than the TTL (a died while firing), b may take the timer over.
    clock[0] = start + timedelta(seconds=31)
    assert await b.claim(timer)
