"""MongoDB access through PyMongo's async API (`AsyncMongoClient`, the successor of motor).

Everything here stays within what FerretDB 1.x supports: no transactions, no change
streams, equality filters on scalar fields for anything hot, unique indexes.
"""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase


def create_client(url: str, *, app_name: str) -> AsyncMongoClient[dict[str, Any]]:
    return AsyncMongoClient(
        url,
        appname=app_name,
        tz_aware=True,
        serverSelectionTimeoutMS=3000,
        connectTimeoutMS=3000,
    )


async def ping(db: AsyncDatabase[dict[str, Any]]) -> None:
    await db.command("ping")
