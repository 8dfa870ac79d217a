"""Store-aware primitives for handling a batch of events with few round trips.

A batch handler typically: groups its events by aggregate key (`group_by_key`), reads
every aggregate it touches at once (`find_by_ids`), runs the pure domain function per key
(`run_per_key`, keys side by side within a bound, one key's events in order), and writes
the results in bulk (`insert_new`, `update_by_ids`). `crm_runtime.idempotency.apply_once_many`
is the effectively-once counterpart of `apply_once` built on these.

The embedded FerretDB 1.24 on SQLite imposes limits, measured on this stack and worked
around here so that domain code never sees them (the code stays correct on MongoDB):
- only an `{_id: x}` filter uses an index; `{_id: {$in: [...]}}` reads the whole
  collection, so there `find_by_ids` runs concurrent `find_one` by `_id` instead;
- an `update` command holds one of the database's 100 SQLite connections per statement
  until the whole command ends (docs/reliability.md): one of 100 statements never answers
  (measured here: 99 answered, 100 hung for minutes), nor do two of 50 at once. So bulk
  updates go `UPDATE_CHUNK` statements a command, one command at a time per client
  (SQLite has one writer anyway), leaving connections for reads and other writers;
- `insert_many(ordered=False)` answers the duplicates as write errors (code 11000), but
  falls back to one insert per document for each group of a hundred holding one: insert
  where duplicates are rare (claims, new documents), as `apply_once_many` does.
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from crm_runtime.mongo import is_ferretdb

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

# Keys (aggregates) handled side by side: enough to keep the store busy while one round trip
# is in flight, few enough that a 2-core machine's FerretDB does not thrash (16 concurrent
# `find_one` by `_id` ran 2.5x faster than one after another, more gained nothing).
KEY_CONCURRENCY = 16
READ_CONCURRENCY = 16
# FerretDB 1.24: an update command of >= 100 statements hangs (see the module docstring);
# 25 keeps far from it with reads and another writer in flight, and costs about as much
# per document as larger commands (10: 1,100/s, 25: 900-1,700/s, 50: 1,700/s, noisy).
UPDATE_CHUNK = 25
_update_locks: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()
# Inserts: FerretDB accepts thousands per command; 500 bounds one command's size and time.
INSERT_CHUNK = 500
DUPLICATE_KEY = 11000


def group_by_key(items: Iterable[T], key: Callable[[T], K]) -> dict[K, list[T]]:
    """The items per key, keys in order of first appearance, each key's items in order."""
    groups: dict[K, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


async def run_per_key(
    groups: Mapping[K, Sequence[T]],
    action: Callable[[K, Sequence[T]], Awaitable[None]],
    *,
    concurrency: int = KEY_CONCURRENCY,
) -> dict[K, BaseException]:
    """Run `action(key, items)` for every key, at most `concurrency` keys at a time.

    Returns the keys whose action failed, with the exception; the other keys' actions ran
    to completion (one failing key does not cancel the rest). Cancellation propagates.
    """
    limit = asyncio.Semaphore(max(1, concurrency))
    failures: dict[K, BaseException] = {}

    async def one(key: K, items: Sequence[T]) -> None:
        async with limit:
            try:
                await action(key, items)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures[key] = exc

    await asyncio.gather(*(one(key, items) for key, items in groups.items()))
    return failures


class KeysFailed(Exception):
    """Some keys of a batch failed (the others were applied); `failures` names them."""

    def __init__(self, failures: Mapping[Any, BaseException]):
        first = next(iter(failures.values()))
        super().__init__(f"{len(failures)} key(s) failed, first: {type(first).__name__}: {first}")
        self.failures = dict(failures)


def per_key(
    handle: Callable[[K, Sequence[T]], Awaitable[None]],
    key: Callable[[T], K],
    *,
    concurrency: int = KEY_CONCURRENCY,
) -> Callable[[list[T]], Awaitable[None]]:
    """A batch handler (for `BatchSubscription`) from a per-key one: the batch's items grouped
    by `key` (e.g. `lambda item: item[0].subject`), keys side by side, each key's items in
    order. If any key fails, `KeysFailed` is raised once all keys ran, so the subscription
    retries and splits the batch; the keys that succeeded must be idempotent, as always."""

    async def handler(items: list[T]) -> None:
        failures = await run_per_key(group_by_key(items, key), handle, concurrency=concurrency)
        if failures:
            raise KeysFailed(failures)

    return handler


async def gather_bounded(aws: Iterable[Awaitable[T]], *, concurrency: int) -> list[T]:
    """`asyncio.gather` with at most `concurrency` awaitables running at once (results in order)."""
    limit = asyncio.Semaphore(max(1, concurrency))

    async def one(aw: Awaitable[T]) -> T:
        try:
            async with limit:
                return await aw
        except BaseException:
            if inspect.iscoroutine(aw):
                aw.close()  # cancelled before its turn (a service stopping): it never runs
            raise

    return list(await asyncio.gather(*(one(aw) for aw in aws)))


def _chunks(seq: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(seq), size):
        yield seq[start:start + size]


async def find_by_ids(
    collection: AsyncCollection[dict[str, Any]],
    ids: Iterable[Any],
    projection: Mapping[str, Any] | None = None,
    *,
    concurrency: int = READ_CONCURRENCY,
) -> dict[Any, dict[str, Any]]:
    """The documents with these `_id`s, by id (absent ones are missing from the answer).

    MongoDB: one `$in` query per chunk. FerretDB: concurrent `find_one({_id})`, the only
    filter its SQLite backend answers from an index.
    """
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    proj = dict(projection) if projection is not None else None
    if await is_ferretdb(collection.database.client):
        docs = await gather_bounded((collection.find_one({"_id": i}, proj) for i in wanted),
                                    concurrency=concurrency)
        return {doc["_id"]: doc for doc in docs if doc is not None}
    found: dict[Any, dict[str, Any]] = {}
    for chunk in _chunks(wanted, INSERT_CHUNK):
        async for doc in collection.find({"_id": {"$in": list(chunk)}}, proj):
            found[doc["_id"]] = doc
    return found


async def insert_new(collection: AsyncCollection[dict[str, Any]], docs: Sequence[Mapping[str, Any]]) -> set[Any]:
    """Insert the documents, leaving those whose `_id` exists already as they are.

    Returns the `_id`s that existed (not inserted). Any other write error is raised. The
    documents must carry their `_id`.
    """
    existed: set[Any] = set()
    for chunk in _chunks(docs, INSERT_CHUNK):
        try:
            await collection.insert_many([dict(d) for d in chunk], ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            others = [e for e in errors if e.get("code") != DUPLICATE_KEY]
            if others or not errors:
                raise
            existed.update(chunk[e["index"]]["_id"] for e in errors)
    return existed


async def update_by_ids(
    collection: AsyncCollection[dict[str, Any]],
    updates: Sequence[tuple[Any, Mapping[str, Any]]],
) -> int:
    """Apply each `(id, update)` with a filter on `_id` alone, in as few commands as the
    store allows (`UPDATE_CHUNK` per command, one command at a time per client). Returns how
    many documents matched."""
    client = collection.database.client
    lock = _update_locks.setdefault(client, asyncio.Lock())
    matched = 0
    for chunk in _chunks(updates, UPDATE_CHUNK):
        ops = [UpdateOne({"_id": doc_id}, dict(update)) for doc_id, update in chunk]
        async with lock:
            result = await collection.bulk_write(ops, ordered=False)
        matched += result.matched_count
    return matched
