"""A rebuild's replay against the real Kafka: its member stays in its group while the fold
keeps the event loop busy, what it stores it also commits (if the group dropped it, once
it is back), and a rebuild stopped before its switch says so."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from crm_runtime.mongo import create_client
from crm_runtime.testing import eventually, unique_suffix
from reporting.adapters.store import ReadModels
from reporting.entrypoints.cli import rebuild
from reporting.entrypoints.replay import Replay

from .conftest import Events, reporting_settings

pytestmark = pytest.mark.stack

SESSION_MS = 6_000  # the broker's smallest session: a member silent for 6 s is dropped


@contextlib.asynccontextmanager
async def fresh_replay(stack, contacts: int) -> AsyncIterator[Replay]:
    """A fresh replay of generation g2 (not started), in a database of its own, after
    `contacts` contacts were published; stopped and emptied afterwards."""
    settings = reporting_settings(stack, unique_suffix())
    events = Events()
    for i in range(contacts):
        contact = f"k-{unique_suffix()}-{i}"
        events.add("crm.intake.contact.received.v1", {
            "contact_id": contact, "channel": "hotline", "source_ref": contact, "region": "shenzhen",
            "customer_match": "unknown", "kind_hint": "complaint", "subject": "s", "body": "b",
            "received_at": "2026-03-02T09:00:00+08:00"}, subject=contact)
    await events.publish(stack.bootstrap)
    mongo = create_client(settings.mongodb_url, app_name="reporting-tests")
    models = ReadModels(mongo[settings.database_name])
    await models.generation("g2").drop()
    replay = Replay(settings, models, "g2", fresh=True, session_timeout_ms=SESSION_MS,
                    client_id="crm-reporting-test-replay")
    try:
        yield replay
    finally:
        await replay.stop()
        await models.generation("g2").drop()
        await mongo.close()


async def committed_offsets(replay: Replay) -> dict:
    return {tp: await replay.consumer.committed(tp) for tp in replay.next_offsets}


async def test_a_fresh_replay_stays_in_its_group_while_its_fold_holds_the_loop(stack):
    """Every partition of every topic is sent back to its beginning when a fresh replay
    joins. The member sends no heartbeat until that is done, so it must not take longer
    than a session while a fold holds the loop (one seek a partition once took 66 rounds of
    the fetcher and a minute, and the rebuild's commit at the switch failed)."""
    async with fresh_replay(stack, contacts=24) as replay:  # on every partition, most likely
        make_room = replay.gen.make_room

        def busy_fold() -> None:  # what a large rebuild's fold does to the loop, every step
            time.sleep(0.3)
            make_room()

        replay.gen.make_room = busy_fold  # type: ignore[method-assign]
        await replay.start()
        until = time.monotonic() + 2.5 * SESSION_MS / 1000
        while time.monotonic() < until:
            await replay.step(timeout_ms=100)
        assert set(replay.consumer.assignment()) == set(replay._partitions())  # it holds every partition
        await replay.flush()  # stored, then committed: refused if the group had dropped the member
        committed = await committed_offsets(replay)
        assert committed and committed == replay.next_offsets


async def test_a_fresh_replay_dropped_by_its_group_while_storing_still_commits(stack):
    """A store that holds the loop past the session (a slow disk at the switch) costs the
    member its place in the group; what it stored must still be committed, or the switch
    fails after minutes of replay and the whole rebuild has to run again."""
    async with fresh_replay(stack, contacts=12) as replay:
        await replay.start()
        until = time.monotonic() + 90  # every topic from its start: late in a full run, the whole suite's events
        while time.monotonic() < until and not await replay.caught_up():
            await replay.step(timeout_ms=200)
        assert await replay.caught_up()
        store = replay.gen.flush

        async def stalled_store() -> None:
            await store()
            time.sleep(SESSION_MS / 1000 + 3)  # noqa: ASYNC251 -- holding the loop is the point: no heartbeat

        replay.gen.flush = stalled_store  # type: ignore[method-assign]
        await replay.flush()  # refused as it was, the commit is made once the member is back
        committed = await committed_offsets(replay)
        assert committed and committed == replay.next_offsets
        # and it reads on from there, not from the beginning again
        assert {tp: await replay.consumer.position(tp) for tp in committed} == committed
        assert await replay.step(timeout_ms=500) == 0


async def test_a_rebuild_stopped_before_its_switch_says_so_and_leaves_the_api_where_it_was(stack):
    settings = reporting_settings(stack, unique_suffix())
    mongo = create_client(settings.mongodb_url, app_name="reporting-tests")
    models = ReadModels(mongo[settings.database_name])

    async def replaying() -> bool:
        doc = await models.meta.find_one({"_id": "rebuild"})
        return doc is not None and doc["state"] == "replaying"

    task = asyncio.create_task(rebuild(settings, progress=False, follow_s=0))
    try:
        assert await eventually(replaying, timeout=60, interval=0.05)
        task.cancel()  # Ctrl-C, or the operator's deployment stopping the command
        with pytest.raises(asyncio.CancelledError):
            await task
        doc = await models.meta.find_one({"_id": "rebuild"})
        assert (doc["state"], doc["generation"], doc["previous"]) == ("stopped", "g2", "g1")
        assert doc["reason"].startswith("CancelledError") and doc["ended_at"]
        assert (await models.pointer())["generation"] == "g1"
    finally:
        task.cancel()
        await models.generation("g2").drop()
        await mongo.close()
