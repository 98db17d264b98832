"""Per-key sliding-window rate limits, as documented for the real API.

``POST /v2/upload`` and ``POST /v2/edits`` share 30 requests a minute; ``GET /v2/edits/{id}``
has 300. A client that polls too eagerly or floods submissions must see the 429 here first.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

WINDOW_SECONDS = 60.0

# bucket name → requests allowed per window
DOCUMENTED_LIMITS: Mapping[str, int] = {"submit": 30, "poll": 300}


class SlidingWindowLimiter:
    """Counts admitted requests per (key, bucket) over the last ``window`` seconds."""

    def __init__(
        self,
        limits: Mapping[str, int] = DOCUMENTED_LIMITS,
        *,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._limits = dict(limits)
        self._window = window
        self._clock = clock
        self._admitted: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def admit(self, key: str, bucket: str) -> int | None:
        """Admit one request and return None, or return the seconds to wait (Retry-After)."""
        now = self._clock()
        with self._lock:
            times = self._admitted.setdefault((key, bucket), deque())
            while times and times[0] <= now - self._window:
                times.popleft()
            if len(times) >= self._limits[bucket]:
                return max(1, math.ceil(times[0] + self._window - now))
            times.append(now)
            return None
