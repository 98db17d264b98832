"""The client's own request budget, so that no burst of files can exceed the API's limits.

Cleanvoice allows 30 upload/create requests and 300 status requests a minute per key
(docs/cleanvoice-api.md). Each budget is a sliding window: a request may go when fewer than
``limit`` requests went in the last minute. A 429 answer closes its budget for everyone
until the server's ``Retry-After`` has passed, so one refusal slows the whole client, not
just the job that got it.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Mapping

WINDOW_SECONDS = 60.0
MARGIN_SECONDS = 0.5  # clocks and network delays: stay a little inside the server's window
DEFAULT_RETRY_AFTER = 5.0

Clock = Callable[[], float]


class Budget:
    """At most ``limit`` requests in any ``window`` seconds, and none while closed."""

    def __init__(self, limit: int, window: float = WINDOW_SECONDS, clock: Clock = time.monotonic):
        self.limit = limit
        self.window = window + MARGIN_SECONDS
        self.clock = clock
        self._sent: collections.deque[float] = collections.deque()
        self._closed_until = 0.0
        self._lock = asyncio.Lock()

    def delay(self) -> float:
        """Seconds until a request may go (0 if now)."""
        now = self.clock()
        while self._sent and now - self._sent[0] >= self.window:
            self._sent.popleft()
        wait = max(0.0, self._closed_until - now)
        if len(self._sent) >= self.limit:
            wait = max(wait, self._sent[0] + self.window - now)
        return wait

    async def acquire(self) -> None:
        """Wait for room in the budget, then count one request."""
        async with self._lock:  # first come, first served
            while (wait := self.delay()) > 0:
                await asyncio.sleep(wait)
            self._sent.append(self.clock())

    def close_for(self, seconds: float | None) -> None:
        """The server said 429: send nothing more for ``seconds`` (its Retry-After)."""
        wait = DEFAULT_RETRY_AFTER if seconds is None else max(seconds, 0.0)
        self._closed_until = max(self._closed_until, self.clock() + wait)

    @property
    def used(self) -> int:
        self.delay()
        return len(self._sent)


class RateLimiter:
    """The budgets of one API key, by name (``submit`` and ``status``)."""

    def __init__(self, limits: Mapping[str, int], clock: Clock = time.monotonic):
        self.budgets = {name: Budget(limit, clock=clock) for name, limit in limits.items()}

    async def acquire(self, name: str) -> None:
        await self.budgets[name].acquire()

    def refused(self, name: str, retry_after: float | None) -> None:
        self.budgets[name].close_for(retry_after)
