"""The shared store's outages, as the daemon lives through them.

With ``[store]`` the job state is in a PostgreSQL database on the network: it can stop,
restart or be cut off while the daemon runs. Then every loop that meets StoreUnavailable
reports it here instead of ending the daemon: no new step starts (the scheduler asks again
every few seconds), the status line and ``/healthz`` say why, and one ``store.unavailable``
line goes to the log (an alert can match on it). A step cut short by the outage is treated
as a crash of that step once the store answers again (``Pipeline.recover_job``): an
interrupted upload is redone, a create-edit whose answer was not recorded is ambiguous
(never sent again by itself). ``store.available`` says it is over.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from cvsyncd import events as ev
from cvsyncd.errors import StoreUnavailable

RETRY_SECONDS = 3.0  # while the store is away, how often the scheduler asks again


class StoreOutage:
    """Whether the store is away now, since when and why; the jobs cut short by it."""

    def __init__(self, on_down: Callable[[str], None] | None = None) -> None:
        self.on_down = on_down  # an alert to people ([alerts] events "store")
        self.reason: str | None = None
        self.interrupted: set[int] = set()  # jobs whose step the outage cut short
        self.log = structlog.get_logger("cvsyncd.store")

    @property
    def active(self) -> bool:
        return self.reason is not None

    def down(self, exc: StoreUnavailable, job: int | None = None) -> None:
        if job is not None:
            self.interrupted.add(job)
        if self.reason is None:
            self.reason = str(exc)
            self.log.error(ev.STORE_UNAVAILABLE, error=self.reason)
            if self.on_down is not None:
                self.on_down(self.reason)

    def up(self) -> bool:
        """The store answered: return whether an outage just ended."""
        if self.reason is None:
            return False
        self.reason = None
        self.log.info(ev.STORE_AVAILABLE)
        return True
