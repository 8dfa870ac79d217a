"""A relay that publishes its batch and then hangs before clearing it, until killed: for
the kill -9 test of the outbox relay.

    python relay_holder.py BOOTSTRAP MONGODB_URL DATABASE COLLECTION

Prints "published N" once the batch's events are acknowledged by Kafka.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from crm_runtime.kafka import create_broker
from crm_runtime.leases import Lease
from crm_runtime.mongo import create_client
from crm_runtime.outbox import OutboxRelay
from prometheus_client import CollectorRegistry


class HangsBeforeClearing(OutboxRelay):
    async def _clear(self, collection: Any, docs: list[dict[str, Any]], ferret: bool) -> list[dict[str, Any]]:
        print(f"published {sum(len(d['outbox']) for d in docs)}", flush=True)
        await asyncio.sleep(3600)
        raise AssertionError("should have been killed")


async def main(bootstrap: str, url: str, database: str, collection: str) -> None:
    client = create_client(url, app_name="relay-holder")
    broker = create_broker(bootstrap, service="relay-holder", registry=CollectorRegistry())
    await broker.connect()
    db = client[database]
    relay = HangsBeforeClearing(broker, [db[collection]], Lease(db["leases"], "outbox-relay", "doomed"))
    await relay.relay_once()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
