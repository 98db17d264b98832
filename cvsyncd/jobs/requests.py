"""The API request budget kept in the store, for the daemons that share one key.

Cleanvoice's limits are per key (30 uploads and create-edits, 300 status requests a
minute). One daemon keeps its budget in memory (``cleanvoice/budget.py``); daemons of
several sites on one key keep it here, in the shared database, so that a burst from two
sites together never exceeds the key's limit. The rule is the in-memory budget's: a
request may go when fewer than ``limit`` requests of its kind went in the last ``window``
seconds, by the database's clock (one clock for every host), and none while a 429 answer
closed the budget. (A token bucket with room for a minute's burst would let that burst
and a minute's refill through in one window: up to twice the limit.)
"""

from __future__ import annotations

import time

from cvsyncd.jobs.database import Connection
from cvsyncd.jobs.meta import DaemonState

META_CLOSED = "requests_closed:"  # + a budget's name: no request before this time


class RequestBudget(DaemonState):
    """The shared request log: ``take_request`` and ``close_requests``."""

    def _clock(self, conn: Connection) -> float:
        """Now, by the database's clock (SQLite's: this machine's)."""
        return time.time()

    def take_request(self, name: str, limit: int, window: float) -> float:
        """Count one ``name`` request now and return 0 if the budget has room; else count
        nothing and return the seconds until it may have room."""
        with self._write() as conn:
            now = self._clock(conn)
            conn.execute("DELETE FROM requests WHERE name = ? AND at <= ?", (name, now - window))
            row = conn.execute(
                "SELECT value FROM meta WHERE key = ?", (META_CLOSED + name,)
            ).fetchone()
            closed_until = float(row[0]) if row else 0.0
            if closed_until > now:
                return closed_until - now
            count, oldest = conn.execute(
                "SELECT COUNT(*), MIN(at) FROM requests WHERE name = ?", (name,)
            ).fetchone()
            if int(count) >= limit:
                return max(float(oldest) + window - now, 0.01)
            conn.execute("INSERT INTO requests (name, at) VALUES (?, ?)", (name, now))
            return 0.0

    def close_requests(self, name: str, seconds: float) -> None:
        """A 429 answer at any site: no ``name`` request anywhere for ``seconds``."""
        with self._write() as conn:
            until = self._clock(conn) + seconds
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE"
                " SET value = excluded.value",
                (META_CLOSED + name, repr(until)),
            )

    def requests_in_window(self, name: str, window: float) -> int:
        """How many ``name`` requests went in the last ``window`` seconds (all sites)."""
        with self._write() as conn:
            since = self._clock(conn) - window
            row = conn.execute(
                "SELECT COUNT(*) FROM requests WHERE name = ? AND at > ?", (name, since)
            ).fetchone()
            return int(row[0])
