"""MongoDB access through PyMongo's async API (`AsyncMongoClient`, the successor of motor).

Everything here stays within what FerretDB 1.x supports: no transactions, no change
streams, equality filters on scalar fields for anything hot, unique indexes.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
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


# ------------------------------------------------------------------------ store detection
# The embedded FerretDB 1.x answers the same protocol with different costs (only `{_id: x}`
# uses an index, update commands of 100 statements hang): the batch helpers pick their
# strategy per store. Asked once per client; `buildInfo` is cheap and needs no privilege.
_FERRETDB: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def build_info_is_ferretdb(info: Mapping[str, Any]) -> bool:
    """FerretDB adds `ferretdbVersion` (and `ferretdbFeatures`) to `buildInfo`; MongoDB has neither."""
    return any(str(key).lower().startswith("ferretdb") for key in info)


async def is_ferretdb(client: AsyncMongoClient[dict[str, Any]]) -> bool:
    """Whether the server behind `client` is FerretDB (asked once, then remembered)."""
    known = _FERRETDB.get(client)
    if known is None:
        known = build_info_is_ferretdb(await client.admin.command("buildInfo"))
        _FERRETDB[client] = known
    return known


# ------------------------------------------------------------------------ per-client state
# By identity, not in a WeakKeyDictionary: pymongo clients to the same address compare (and
# hash) equal, and what one client's writer did is not what another's did (two replicas
# in one test process, each with its own client, must not share what they remember).
_per_client: dict[int, tuple[weakref.ref[Any], dict[Any, Any]]] = {}


def per_client(client: Any) -> dict[Any, Any]:
    """A dict of state kept for this client object alone, dropped with it."""
    key = id(client)
    held = _per_client.get(key)
    if held is None or held[0]() is not client:
        def gone(_ref: weakref.ref[Any]) -> None:
            _per_client.pop(key, None)

        held = (weakref.ref(client, gone), {})
        _per_client[key] = held
    return held[1]
