"""Group commit of concurrent inserts, against the real MongoDB-protocol server: every caller's
document stored once and answered only after it is, a duplicate reported to its own caller
alone, and many callers carried by few commands."""

from __future__ import annotations

import asyncio

import pytest
from crm_runtime.coalesce import GroupInsert, group_for, insert_if_new, insert_new, insert_one
from pymongo.errors import DuplicateKeyError


async def test_concurrent_callers_share_commands_and_each_finds_its_document_stored(db):
    group = group_for(db["things"])

    async def caller(i: int) -> bool:
        stored = await insert_if_new(db["things"], {"_id": f"t{i}", "n": i})
        # Answered only once stored: the caller can read its own document back.
        assert await db["things"].find_one({"_id": f"t{i}"}) == {"_id": f"t{i}", "n": i}
        return stored

    assert await asyncio.gather(*(caller(i) for i in range(200))) == [True] * 200
    assert await db["things"].count_documents({}) == 200
    assert group.documents == 200
    assert group.commands < 20  # 200 callers at once: a handful of commands, not 200


async def test_a_lone_caller_is_sent_at_once_in_a_command_of_its_own(db):
    group = group_for(db["alone"])
    assert await insert_if_new(db["alone"], {"_id": "only"})
    assert (group.commands, group.documents) == (1, 1)


async def test_a_duplicate_reaches_only_its_own_caller(db):
    await db["people"].insert_one({"_id": "p7", "name": "first"})
    results = await asyncio.gather(*(insert_if_new(db["people"], {"_id": f"p{i}", "name": "new"})
                                     for i in range(15)))
    assert results == [i != 7 for i in range(15)]
    assert (await db["people"].find_one({"_id": "p7"}))["name"] == "first"  # left as it was
    assert await db["people"].count_documents({"name": "new"}) == 14


async def test_two_callers_with_one_new_id_at_once_store_it_once(db):
    outcomes = await asyncio.gather(insert_if_new(db["ids"], {"_id": "same", "by": "a"}),
                                    insert_if_new(db["ids"], {"_id": "same", "by": "b"}),
                                    insert_if_new(db["ids"], {"_id": "other"}))
    assert sorted(outcomes[:2]) == [False, True] and outcomes[2] is True
    assert await db["ids"].count_documents({"_id": "same"}) == 1
    winner = "a" if outcomes[0] else "b"
    assert (await db["ids"].find_one({"_id": "same"}))["by"] == winner


async def test_insert_one_raises_duplicate_key_like_pymongo_and_insert_new_names_the_existing(db):
    await insert_one(db["keys"], {"_id": "k1"})
    with pytest.raises(DuplicateKeyError):
        await insert_one(db["keys"], {"_id": "k1"})
    assert await insert_new(db["keys"], [{"_id": "k1"}, {"_id": "k2"}, {"_id": "k3"}]) == {"k1"}
    assert await db["keys"].count_documents({}) == 3


async def test_a_failed_command_fails_every_caller_it_carried_and_the_next_command_works(db):
    group = GroupInsert(db["broken"])

    class Unreachable:  # the store answers nothing: every caller of that command hears it
        name = "broken"

        async def insert_many(self, docs, ordered):
            raise ConnectionError("store unreachable")

    group.collection = Unreachable()  # type: ignore[assignment]
    results = await asyncio.gather(*(group.insert({"_id": i}) for i in range(5)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    group.collection = db["broken"]
    assert await group.insert({"_id": 1})
    assert await db["broken"].count_documents({}) == 1


async def test_more_callers_than_one_command_takes_go_in_several(db):
    group = GroupInsert(db["many"], max_batch=10)
    assert all(await asyncio.gather(*(group.insert({"_id": i}) for i in range(35))))
    assert group.commands == 4
    assert await db["many"].count_documents({}) == 35
