"""One rate limiter in front of the SMS provider, shared by every sender in the process:
transactional messages (a customer's own case) are served before broadcasts."""

from __future__ import annotations

import asyncio
import time
from collections import deque


class RateLimiter:
    def __init__(self, rate_per_s: float):
        self.interval = 1.0 / rate_per_s
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._bulk: deque[asyncio.Future[None]] = deque()
        self._next = 0.0
        self._pump: asyncio.Task[None] | None = None
        self.granted = 0

    async def acquire(self, *, urgent: bool) -> None:
        """Wait for a send slot; urgent waiters go ahead of every bulk one."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._bulk).append(future)
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
            future = queue.popleft()
            if future.done():  # its waiter gave up
                continue
            future.set_result(None)
            self.granted += 1
            # No bursts after an idle spell: the next slot is one interval after this one.
            self._next = max(self._next, time.monotonic() - self.interval) + self.interval
