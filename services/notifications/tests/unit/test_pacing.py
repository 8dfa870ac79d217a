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


async def test_on_a_busy_machine_the_rate_is_still_reached_and_never_exceeded_by_more_than_a_group(monkeypatch):
    # A loaded event loop wakes every sleeper late; the time lost is made up, so the
    # provider's rate is reached, and the catching up never bursts past one group.
    from notifications.adapters import pacing

    clock = [1000.0]
    real_sleep = asyncio.sleep

    async def late_sleep(seconds: float) -> None:
        clock[0] += max(0.0, seconds) + 0.03  # 30 ms late, every time
        await real_sleep(0)

    monkeypatch.setattr(pacing.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(pacing.asyncio, "sleep", late_sleep)
    limiter = RateLimiter(rate_per_s=200)
    granted_at: list[float] = []

    async def group() -> None:
        await limiter.acquire(urgent=False, n=20)
        granted_at.append(clock[0])

    await asyncio.gather(*(group() for _ in range(100)))  # 2,000 messages: 10 s at 200/s
    elapsed = granted_at[-1] - granted_at[0]
    assert 20 * 99 / elapsed >= 0.97 * 200
    for i, start in enumerate(granted_at):  # any one second: at most its 200, plus one group
        assert sum(20 for t in granted_at[i:] if t < start + 1.0) <= 200 + 20
