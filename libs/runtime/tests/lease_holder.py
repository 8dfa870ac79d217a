"""Holds a lease and renews it until killed: for the take-over test.

    python lease_holder.py MONGODB_URL DATABASE LEASE_NAME OWNER TTL_S
"""

from __future__ import annotations

import asyncio
import sys

from crm_runtime.leases import Lease
from crm_runtime.mongo import create_client


async def main(url: str, database: str, name: str, owner: str, ttl: str) -> None:
    client = create_client(url, app_name="lease-holder")
    lease = Lease(client[database]["leases"], name, owner, float(ttl))
    while True:
        held = await lease.acquire_or_renew()
        print("held" if held else "waiting", flush=True)
        await asyncio.sleep(float(ttl) / 4)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
