"""The provider's rate limiter: a broadcast group takes its share of the rate in one grant,
and a customer's own message still goes ahead of broadcast groups waiting."""

import asyncio

from notifications.adapters.pacing import RateLimiter


async def test_an_urgent_message_goes_ahead_of_waiting_broadcast_groups():
    limiter = RateLimiter(rate_per_s=1000)
    order: list[str] = []

    async def take(name: str, *, urgent: bool, n: int = 1) -> None:
        await limiter.acquire(urgent=urgent, n=n)
        order.append(name)

    first = asyncio.create_task(take("group 1", urgent=False, n=20))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(take(f"group {i}", urgent=False, n=20)) for i in (2, 3)]
    await asyncio.sleep(0)
    urgent = asyncio.create_task(take("acknowledgement", urgent=True))
    await asyncio.gather(first, *waiting, urgent)
    assert order == ["group 1", "acknowledgement", "group 2", "group 3"]
    assert limiter.granted == 61  # a group counts as its messages against the rate
