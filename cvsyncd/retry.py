"""One back-off policy for everything that is tried again, and ``Retry-After``.

A job's failed step, an account check while paused, a webhook that did not get through:
each waits the way :func:`backoff_delay` says, never less than what the server asked for
with ``Retry-After`` (:func:`parse_retry_after` reads both of its forms).
"""

from __future__ import annotations

import email.utils
import math
import random
import time


def backoff_delay(
    attempt: int, *, base: float = 5.0, cap: float = 900.0, retry_after: float | None = None
) -> float:
    """Return seconds to wait before retry number ``attempt`` (1-based).

    Exponential with full jitter between half and all of the step, never less than what
    the server asked for with ``Retry-After``.
    """
    step = min(cap, base * (2 ** max(attempt - 1, 0)))
    delay = random.uniform(step / 2, step)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """The seconds a ``Retry-After`` header asks for: delta-seconds or an HTTP date (a date
    in the past is 0); None if there is none or it cannot be read."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)
