"""The batch primitives: grouping and per-key concurrency (unit), and the store helpers and
`apply_once_many` against the real MongoDB-protocol server: the same effect as one event at
a time, each event once, also when batches are delivered again or race each other."""

from __future__ import annotations

import asyncio

import pytest
from crm_runtime.batching import (
    UPDATE_CHUNK,
    KeysFailed,
    find_by_ids,
    gather_bounded,
    group_by_key,
    insert_new,
    per_key,
    run_per_key,
    update_by_ids,
)
from crm_runtime.idempotency import APPLIED, apply_once, apply_once_many, fold_updates
from crm_runtime.mongo import build_info_is_ferretdb
from crm_runtime.revisions import CLAIMS, REV

# ------------------------------------------------------------------------------ unit


def test_grouping_keeps_the_order_within_a_key_and_of_first_appearance():
    items = [("b", 1), ("a", 2), ("b", 3), ("c", 4), ("a", 5)]
    assert group_by_key(items, lambda x: x[0]) == {"b": [("b", 1), ("b", 3)], "a": [("a", 2), ("a", 5)],
                                                   "c": [("c", 4)]}
    assert list(group_by_key(items, lambda x: x[0])) == ["b", "a", "c"]


async def test_keys_run_side_by_side_within_the_bound_and_a_failing_key_spares_the_others():
    running, peak, done = 0, 0, []

    async def action(key, items):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        if key == "bad":
            raise ValueError("refused")
        done.extend(items)

    groups = {f"k{i}": [f"k{i}-1", f"k{i}-2"] for i in range(10)} | {"bad": ["x"]}
    failures = await run_per_key(groups, action, concurrency=3)
    assert peak == 3
    assert list(failures) == ["bad"] and isinstance(failures["bad"], ValueError)
    assert sorted(done) == sorted(i for k, v in groups.items() if k != "bad" for i in v)
    # one key's items arrive together and in order
    assert done.index("k4-1") + 1 == done.index("k4-2")


async def test_a_per_key_batch_handler_applies_the_good_keys_and_reports_the_bad_one():
    applied: list[tuple[str, int]] = []

    async def handle(key, items):
        if key == "bad":
            raise ValueError("refused")
        applied.extend(items)

    handler = per_key(handle, key=lambda item: item[0], concurrency=2)
    with pytest.raises(KeysFailed) as failed:
        await handler([("a", 1), ("bad", 2), ("b", 3), ("a", 4)])
    assert list(failed.value.failures) == ["bad"]
    assert sorted(applied) == [("a", 1), ("a", 4), ("b", 3)]
    await handler([("a", 5), ("b", 6)])  # a batch without a bad key passes
    assert ("a", 5) in applied


async def test_reads_cancelled_before_their_turn_are_dropped_without_a_warning():
    """A service stopping cancels a batch's reads: those still waiting for a slot never
    run, and Python must not warn that they were never awaited."""
    import gc
    import warnings

    started: list[int] = []

    async def read(i: int) -> int:
        started.append(i)
        await asyncio.sleep(10)
        return i

    task = asyncio.create_task(gather_bounded((read(i) for i in range(5)), concurrency=2))
    await asyncio.sleep(0.05)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gc.collect()
    assert started == [0, 1]  # the bound held: three never started
    assert not [w for w in caught if "never awaited" in str(w.message)]


def test_updates_fold_into_one_with_the_effect_of_applying_them_in_order():
    assert fold_updates([{"$inc": {"n": 1}}, {"$inc": {"n": 2, "m": 1}}, {"$set": {"s": "a"}},
                         {"$set": {"s": "b"}}, {"$push": {"log": 1}}, {"$push": {"log": {"$each": [2, 3]}}},
                         {"$max": {"hi": 3}}, {"$max": {"hi": 7}}, {"$min": {"lo": 3}}, {"$min": {"lo": 1}}]) == {
        "$inc": {"n": 3, "m": 1}, "$set": {"s": "b"}, "$push": {"log": {"$each": [1, 2, 3]}},
        "$max": {"hi": 7}, "$min": {"lo": 1}}


@pytest.mark.parametrize("updates", [
    [{"$set": {"n": 1}}, {"$inc": {"n": 1}}],          # two operators on one field
    [{"$set": {"a": {}}}, {"$inc": {"a.b": 1}}],         # nested paths
    [{"$rename": {"a": "b"}}],                           # not handled here
    [{"$push": {"log": {"$each": [1], "$slice": -5}}}],  # order-dependent modifier
])
def test_updates_that_do_not_fold_say_so(updates):
    assert fold_updates(updates) is None


def test_ferretdb_is_told_from_its_build_info():
    assert build_info_is_ferretdb({"version": "7.0.42", "ferretdbVersion": "v1.24.0", "ok": 1.0})
    assert not build_info_is_ferretdb({"version": "7.0.14", "gitVersion": "x", "ok": 1.0})


# ------------------------------------------------------------------------ real store


@pytest.mark.stack
async def test_find_by_ids_answers_the_existing_documents_by_id(db):
    coll = db["docs"]
    await coll.insert_many([{"_id": f"d{i}", "v": i} for i in range(30)])
    found = await find_by_ids(coll, ["d3", "d7", "missing", "d3"], {"v": 1})
    assert found == {"d3": {"_id": "d3", "v": 3}, "d7": {"_id": "d7", "v": 7}}


@pytest.mark.stack
async def test_insert_new_leaves_existing_documents_and_names_them(db):
    coll = db["docs"]
    await coll.insert_one({"_id": "a", "v": "old"})
    existed = await insert_new(coll, [{"_id": "a", "v": "new"}, {"_id": "b", "v": "new"}, {"_id": "c", "v": "new"}])
    assert existed == {"a"}
    assert {d["_id"]: d["v"] async for d in coll.find({})} == {"a": "old", "b": "new", "c": "new"}


@pytest.mark.stack
async def test_updates_by_id_beyond_what_one_command_may_carry_are_all_applied(db):
    coll = db["docs"]
    count = 3 * UPDATE_CHUNK + 7  # more than the 100 statements one FerretDB update command survives
    await coll.insert_many([{"_id": i, "v": 0} for i in range(count)])
    matched = await update_by_ids(coll, [(i, {"$inc": {"v": i}}) for i in range(count)])
    assert matched == count
    assert {d["_id"]: d["v"] async for d in coll.find({})} == {i: i for i in range(count)}


@pytest.mark.stack
async def test_apply_once_many_has_the_effect_of_each_event_once(db):
    effects = db["effects"]
    await apply_once(effects, "a", "e0", {"$inc": {"n": 1}})  # applied earlier, one at a time
    items = [("a", "e0", {"$inc": {"n": 1}}), ("a", "e1", {"$inc": {"n": 1}, "$push": {"log": "e1"}}),
             ("b", "e2", {"$inc": {"n": 5}}), ("a", "e3", {"$inc": {"n": 1}, "$push": {"log": "e3"}}),
             ("b", "e2", {"$inc": {"n": 5}})]  # e2 twice in the same batch
    assert await apply_once_many(effects, items) == [False, True, True, True, False]
    a, b = await effects.find_one({"_id": "a"}), await effects.find_one({"_id": "b"})
    assert (a["n"], a["log"], a[APPLIED]) == (3, ["e1", "e3"], ["e0", "e1", "e3"])
    assert (b["n"], b[APPLIED]) == (5, ["e2"])

    # The same batch delivered again changes nothing.
    rev = a[REV]
    assert await apply_once_many(effects, items) == [False] * len(items)
    assert (await effects.find_one({"_id": "a"}))[REV] == rev


@pytest.mark.stack
async def test_batches_racing_each_other_and_single_writers_apply_every_event_once(db):
    effects = db["effects"]
    docs = [f"agg-{i}" for i in range(20)]
    items = [(docs[i % 20], f"ev-{i}", {"$inc": {"n": 1}}) for i in range(200)]
    # The same events three times over: two batches (one in another order) and singles.
    outcomes = await asyncio.gather(
        apply_once_many(effects, items), apply_once_many(effects, list(reversed(items))),
        *(apply_once(effects, d, e, u) for d, e, u in items[::7]))
    applied = sum(outcomes[0]) + sum(outcomes[1]) + sum(1 for o in outcomes[2:] if o)
    assert applied == 200
    assert {d["_id"]: d["n"] async for d in effects.find({})} == {d: 10 for d in docs}


@pytest.mark.stack
async def test_a_claim_left_by_a_writer_that_died_is_waited_out_not_failed(db):
    effects = db["effects"]
    await apply_once(effects, "a", "e0", {"$inc": {"n": 1}})  # now at revision 1
    # A batch claimed revision 2 and died before writing (kill -9 between two commands).
    from datetime import UTC, datetime, timedelta
    await db[CLAIMS].insert_one({"_id": f"{effects.name}/a@2", "at": datetime.now(UTC) - timedelta(seconds=9)})
    assert await apply_once_many(effects, [("a", "e1", {"$inc": {"n": 1}})]) == [True]
    assert (await effects.find_one({"_id": "a"}))["n"] == 2


@pytest.mark.stack
async def test_a_document_written_by_another_writer_since_the_last_batch_loses_nothing(db):
    effects = db["effects"]
    assert await apply_once_many(effects, [("a", "e1", {"$inc": {"n": 1}})]) == [True]
    # Another replica (or the per-event path) writes the document meanwhile.
    assert await apply_once(effects, "a", "e2", {"$inc": {"n": 10}})
    assert await apply_once_many(effects, [("a", "e2", {"$inc": {"n": 10}}), ("a", "e3", {"$inc": {"n": 100}})]) == [
        False, True]
    doc = await effects.find_one({"_id": "a"})
    assert (doc["n"], doc[APPLIED]) == (111, ["e1", "e2", "e3"])
