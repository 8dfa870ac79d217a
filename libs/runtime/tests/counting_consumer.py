"""A consumer process for the crash tests: it applies each event's effect (one increment
of a counter) effectively once, through the service consumer (`subscribe_service`, what
every service runs) and the shared idempotency code.

    python counting_consumer.py BOOTSTRAP MONGODB_URL DATABASE TOPIC GROUP [single|batch KEYS]

With `batch`: a batch subscription applying its events with `apply_once_many`, in slices
of 50 with a pause between, so a kill lands between two writes of one batch.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from crm_runtime.consuming import subscribe_service
from crm_runtime.idempotency import apply_once, apply_once_many
from crm_runtime.kafka import BatchSubscription, DeadLetters, DeliveryPolicy, Subscription, create_broker
from crm_runtime.mongo import create_client

EVENT_TYPE = "crm.partner.hotline.call-recorded.v1"


async def main(bootstrap: str, mongodb_url: str, database: str, topic: str, group: str,
               mode: str = "single", keys: str = "10") -> None:
    client = create_client(mongodb_url, app_name="counting-consumer")
    counters = client[database]["counters"]
    broker = create_broker(bootstrap, service="counting")

    async def on_call(event, data) -> None:
        key = int(event.subject) % int(keys)
        await apply_once(counters, key, event.id, {"$inc": {"n": 1}})
        await asyncio.sleep(0.002)  # a little work, so a kill lands mid-stream

    async def on_calls(batch) -> None:
        items = [(int(event.subject) % int(keys), event.id, {"$inc": {"n": 1}}) for event, _ in batch]
        for start in range(0, len(items), 50):
            await apply_once_many(counters, items[start:start + 50])
            await asyncio.sleep(0.02)

    singles = [] if mode == "batch" else [Subscription(topic).on(EVENT_TYPE, on_call)]
    batches = [BatchSubscription(topic, (EVENT_TYPE,), on_calls)] if mode == "batch" else []
    subscribe_service(broker, singles, batches, group_id=group,
                      dead_letters=DeadLetters(broker, "counting"), policy=DeliveryPolicy())
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await broker.start()
    print("ready", flush=True)
    await stop.wait()
    await broker.stop()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:8]))
