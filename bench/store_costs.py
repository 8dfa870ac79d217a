"""What one store operation costs on this machine, measured in the same run as the
benchmark it explains: FerretDB's CPU and the client's (PyMongo) per read by `_id`, per
single-document insert and per document of a grouped `insert_many`, on a fresh database.
With the commands per contact of a run, it says where a contact's time goes."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from crm_runtime.mongo import create_client

from bench.common import table
from bench.profile import ferretdb_pid, proc_cpu_s

# About a contact's size as intake stores it (Chinese text, its event in the outbox).
DOCUMENT = {"channel": "hotline", "region": "shenzhen", "subject": "卫生间天花板漏水", "body": "漏水" * 60,
            "outbox": [{"id": "e", "topic": "crm.intake.contacts.v1", "key": "k", "value": "v" * 900}],
            "outbox_pending": True, "rev": 0}


def _own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


async def measure(stack: Any, ops: int = 2000) -> tuple[list[str], dict[str, float]]:
    """Rows of a table (operation, FerretDB ms, client ms per document) and the same as facts."""
    pid = ferretdb_pid(stack)
    client = create_client(stack.mongodb_url, app_name="bench-store-costs")
    db = client[f"bench_store_costs_{uuid.uuid4().hex[:6]}"]
    facts: dict[str, float] = {}
    rows = []
    try:
        await db["read"].insert_many([{"_id": f"d{i}", **DOCUMENT} for i in range(ops)])

        async def run(label: str, key: str, count: int, docs_each: int, op: Callable[[int], Awaitable[Any]],
                      concurrency: int = 16) -> None:
            limit = asyncio.Semaphore(concurrency)

            async def one(i: int) -> None:
                async with limit:
                    await op(i)

            ferret0, own0 = (proc_cpu_s(pid) or 0.0) if pid else 0.0, _own_cpu_s()
            await asyncio.gather(*(one(i) for i in range(count)))
            ferret = ((proc_cpu_s(pid) or 0.0) if pid else 0.0) - ferret0
            own = _own_cpu_s() - own0
            docs = count * docs_each
            facts[f"{key}_ferret_ms"], facts[f"{key}_client_ms"] = ferret * 1000 / docs, own * 1000 / docs
            rows.append((label, f"{docs:,}", f"{ferret * 1000 / docs:.2f}", f"{own * 1000 / docs:.2f}"))

        await run("`find_one({_id})`, 16 at a time", "find", ops, 1,
                  lambda i: db["read"].find_one({"_id": f"d{i}"}))
        await run("`insert_one`, 16 at a time", "insert_one", ops, 1,
                  lambda i: db["one"].insert_one({"_id": i, **DOCUMENT}))
        await run("`insert_many` of 5 (a grouped insert of this burst's size), 16 at a time", "insert_5",
                  ops // 5, 5, lambda i: db["five"].insert_many([{"_id": i * 5 + j, **DOCUMENT} for j in range(5)],
                                                                ordered=False))
    finally:
        await client.drop_database(db.name)
        await client.close()
    return table(["store operation (fresh database, contact-sized documents)", "documents",
                  "FerretDB ms CPU per document", "client (PyMongo) ms CPU per document"], rows), facts
