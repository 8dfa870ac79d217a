"""Group commit: the inserts that concurrent callers make into one collection go to the
store as one `insert_many(ordered=False)`, and each caller gets its own document's outcome.

Why: under a burst of concurrent requests (50 HTTP requests in flight, each inserting a
marker, a contact, a customer...), every single-document insert is a round trip that costs
the store a command and a transaction and the client a command to build and parse; on the
embedded FerretDB that per-command cost, not the documents, is what fills the CPUs.
One command for the documents of many callers costs about as much as one of them.

How: no timer. A caller's document joins the collection's queue; if no command is in
flight, one is sent at once with what is queued (after one turn of the event loop, so
callers woken together travel together). While it is in flight, newcomers queue up and go
in the next command, up to `MAX_BATCH`. A lone caller therefore waits for nothing, and
under load the batches grow by themselves with the load.

Durability is not weakened: `insert` returns only once the store has answered the
command that carried the document. A duplicate `_id` reaches only the caller whose
document it was (as `False`, or `DuplicateKeyError` from `insert_one`); another write error
of one document only its caller; a failure of the whole command (connection lost, write
concern) every caller of that command. FerretDB falls back to one insert per document
for a command holding a duplicate (`crm_runtime.batching`): still correct, only slower,
so this is for inserts where duplicates are rare (new documents, markers, claims).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError

from crm_runtime.batching import DUPLICATE_KEY

# Enough to carry a burst's worth of callers in one command; small enough that one command
# stays short (FerretDB writes a hundred documents to a transaction).
MAX_BATCH = 100


class GroupInsert:
    """The insert queue of one collection (use `group_for`, one per collection and client)."""

    def __init__(self, collection: AsyncCollection[dict[str, Any]], *, max_batch: int = MAX_BATCH) -> None:
        self.collection = collection
        self.max_batch = max_batch
        self._queue: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        self._sender: asyncio.Task[None] | None = None
        self.commands = 0  # sent so far (for tests and benchmarks)
        self.documents = 0

    async def insert(self, document: Mapping[str, Any]) -> bool:
        """Store the document (it must carry its `_id`); False if that `_id` exists already."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._queue.append((dict(document), future))
        sender = self._sender
        if sender is None or sender.done() or sender.get_loop() is not loop:  # (a test's loop that ended)
            # A task of its own: a caller that gives up does not cancel the others' command.
            self._sender = asyncio.create_task(self._send(), name=f"group-insert-{self.collection.name}")
        return await asyncio.shield(future)

    async def _send(self) -> None:
        try:
            await asyncio.sleep(0)  # callers woken in the same turn of the loop join this command
            while self._queue:
                batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
                await self._one_command(batch)
        except BaseException as exc:  # cancelled (shutdown): nobody may wait forever
            left, self._queue = self._queue, []
            self._settle(left, {i: exc for i in range(len(left))})
            raise
        finally:
            if self._sender is asyncio.current_task():
                self._sender = None

    async def _one_command(self, batch: list[tuple[dict[str, Any], asyncio.Future[bool]]]) -> None:
        self.commands += 1
        self.documents += len(batch)
        outcome: dict[int, bool | BaseException] = {}
        try:
            await self.collection.insert_many([doc for doc, _ in batch], ordered=False)
        except BulkWriteError as exc:
            details = exc.details or {}
            if details.get("writeConcernErrors"):
                outcome = {i: exc for i in range(len(batch))}  # nothing is known to be durable
            for error in details.get("writeErrors", []):
                index = error.get("index")
                if isinstance(index, int) and 0 <= index < len(batch) and index not in outcome:
                    outcome[index] = (False if error.get("code") == DUPLICATE_KEY
                                      else WriteError(error.get("errmsg", "write error"), error.get("code"), error))
        except asyncio.CancelledError:
            outcome = {i: asyncio.CancelledError() for i in range(len(batch))}
            self._settle(batch, outcome)
            raise
        except Exception as exc:  # the whole command failed: every caller of it hears so
            outcome = {i: exc for i in range(len(batch))}
        self._settle(batch, outcome)

    @staticmethod
    def _settle(batch: list[tuple[dict[str, Any], asyncio.Future[bool]]],
                outcome: Mapping[int, bool | BaseException]) -> None:
        for i, (_, future) in enumerate(batch):
            if future.done():
                continue
            result = outcome.get(i, True)
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)


# One queue per collection and client: the client is bound to its event loop, and a
# client that is closed and dropped takes its queues with it.
_groups: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], GroupInsert]] = weakref.WeakKeyDictionary()


def group_for(collection: AsyncCollection[dict[str, Any]]) -> GroupInsert:
    per_client = _groups.setdefault(collection.database.client, {})
    key = (collection.database.name, collection.name)
    group = per_client.get(key)
    if group is None:
        group = per_client[key] = GroupInsert(collection)
    return group


async def insert_if_new(collection: AsyncCollection[dict[str, Any]], document: Mapping[str, Any]) -> bool:
    """Insert one document with those of concurrent callers; False if its `_id` exists."""
    return await group_for(collection).insert(document)


async def insert_one(collection: AsyncCollection[dict[str, Any]], document: Mapping[str, Any]) -> None:
    """As `collection.insert_one`, grouped with concurrent callers: `DuplicateKeyError` if the
    `_id` exists."""
    if not await group_for(collection).insert(document):
        raise DuplicateKeyError(f"E11000 duplicate key error collection: {collection.full_name} "
                                f"dup key: {{ _id: {document['_id']!r} }}", DUPLICATE_KEY)


async def insert_new(collection: AsyncCollection[dict[str, Any]], documents: Sequence[Mapping[str, Any]]) -> set[Any]:
    """`crm_runtime.batching.insert_new` for a caller with a few documents among many
    concurrent callers: the `_id`s that existed (not inserted)."""
    group = group_for(collection)
    stored = await asyncio.gather(*(group.insert(d) for d in documents))
    return {d["_id"] for d, ok in zip(documents, stored, strict=True) if not ok}
