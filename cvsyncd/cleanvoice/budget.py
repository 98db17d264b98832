"""The client's own request budget, so that no burst of files can exceed the API's limits.

Cleanvoice allows 30 upload/create requests and 300 status requests a minute per key
(docs/cleanvoice-api.md). Each budget is a sliding window: a request may go when fewer than
``limit`` requests went in the last minute. A 429 answer closes its budget for everyone
until the server's ``Retry-After`` has passed, so one refusal slows the whole client, not
just the job that got it.

Daemons of several sites on one key share their budgets through the shared store
(``RateLimiter.share``, jobs/requests.py): a request then also needs room in the key's
budget there, and a 429 closes that one for every site. While the store does not answer,
requests wait (never sent past a budget nobody can read).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable, Mapping

from cvsyncd.errors import StoreError

WINDOW_SECONDS = 60.0
MARGIN_SECONDS = 0.5  # clocks and network delays: stay a little inside the server's window
DEFAULT_RETRY_AFTER = 5.0
SHARED_RETRY_SECONDS = 2.0  # the shared budget cannot be read: ask again after this
SHARED_MAX_SLEEP = 5.0  # wake to ask again at least this often while waiting for room

Take = Callable[[str, int, float], float]  # (budget, limit, window) → seconds to wait, 0: taken
Close = Callable[[str, float], None]  # (budget, seconds): a 429, for every site

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
        self._take: Take | None = None
        self._close: Close | None = None
        self.shared_waits = 0  # times a request waited for the shared budget (for tests)

    def share(self, take: Take, close: Close) -> None:
        """Also keep each budget in the shared store, with every other site's requests."""
        self._take, self._close = take, close

    async def acquire(self, name: str) -> None:
        budget = self.budgets[name]
        await budget.acquire()
        if self._take is None:
            return
        while True:
            try:
                wait = self._take(name, budget.limit, budget.window)
            except StoreError:
                wait = SHARED_RETRY_SECONDS  # the store is away: nothing goes meanwhile
            if wait <= 0:
                return
            self.shared_waits += 1
            await asyncio.sleep(min(wait, SHARED_MAX_SLEEP))

    def refused(self, name: str, retry_after: float | None) -> None:
        self.budgets[name].close_for(retry_after)
        if self._close is not None:
            seconds = DEFAULT_RETRY_AFTER if retry_after is None else max(retry_after, 0.0)
            # if the store is away, this site's budget is closed; the others learn from
            # their own 429
            with contextlib.suppress(StoreError):
                self._close(name, seconds)
