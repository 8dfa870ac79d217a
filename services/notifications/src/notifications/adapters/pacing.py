"""One rate limiter in front of the SMS provider, shared by every sender in the process:
transactional messages (a customer's own case) are served before broadcasts.

A broadcast asks for a group of sends at once (`n`): the grant is one wake-up instead of
`n`, and the next waiter is served `n` intervals later, so the rate holds on average while
an urgent message waits at most one group's worth (a tenth of a second at the defaults)."""

from __future__ import annotations

import asyncio
import time
from collections import deque


class RateLimiter:
    def __init__(self, rate_per_s: float):
        self.interval = 1.0 / rate_per_s
        self.rate_per_s = rate_per_s
        self._urgent: deque[tuple[asyncio.Future[None], int]] = deque()
        self._bulk: deque[tuple[asyncio.Future[None], int]] = deque()
        self._next = 0.0
        self._pump: asyncio.Task[None] | None = None
        self.granted = 0

    async def acquire(self, *, urgent: bool, n: int = 1) -> None:
        """Wait for `n` send slots; urgent waiters go ahead of every bulk one."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._bulk).append((future, max(1, n)))
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._run())
        try:
            await future
        except asyncio.CancelledError:
            if not future.done():
                future.cancel()
            raise

    def waiting(self) -> int:
        return len(self._urgent) + len(self._bulk)

    async def _run(self) -> None:
        while self._urgent or self._bulk:
            now = time.monotonic()
            if self._next > now:
                await asyncio.sleep(self._next - now)
            queue = self._urgent if self._urgent else self._bulk
            if not queue:
                continue
            future, n = queue.popleft()
            if future.done():  # its waiter gave up
                continue
            future.set_result(None)
            self.granted += n
            # The next grant is n intervals after this one was due, so a wake-up late by up to
            # this grant's own n intervals (a busy event loop) is made up and the rate holds on
            # average; later than that, it was an idle spell: from now, no burst.
            now = time.monotonic()
            due = self._next if now - self._next <= n * self.interval else now
            self._next = due + n * self.interval
