"""Who may use the dashboard: sessions, CSRF tokens, the login and its throttle.

- A session is a random 32-byte token in a cookie (HttpOnly, SameSite=Strict, Path=/),
  kept in memory: a restart logs everyone out. Each session has its own CSRF token, which
  every form carries and every POST must return (compared in constant time).
- With a ``password_file`` a session must log in; the password is compared in constant
  time, failed logins are logged and slowed per client address (a growing wait, capped),
  and a login starts a new session (no fixation).
- Without one (only possible on loopback) a session is anonymous but still needed, with
  its CSRF token, for every action; and the ``Host`` header must name this machine, so a
  page of another site cannot reach the dashboard through DNS rebinding.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field

from cvsyncd.urls import is_loopback

COOKIE = "cvsyncd_session"
SESSION_IDLE_SECONDS = 12 * 3600.0  # a session unused this long is gone
MAX_SESSIONS = 1000  # the oldest go first beyond this (a flood of anonymous visits)
THROTTLE_FIRST = 1.0  # seconds to wait after the first failed login; doubles after each
THROTTLE_CAP = 60.0
THROTTLE_FORGET = 3600.0  # failures of a client are forgotten after this long


@dataclass
class Session:
    token: str
    csrf: str
    logged_in: bool
    seen: float
    flash: list[str] = field(default_factory=list)  # messages shown on the next page

    def csrf_ok(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(self.csrf.encode(), str(given).encode())


class Sessions:
    """The sessions of one running dashboard (in memory)."""

    def __init__(self, password: str | None):
        self._password = password
        self._sessions: dict[str, Session] = {}

    @property
    def needs_login(self) -> bool:
        return self._password is not None

    def get(self, token: str | None, now: float | None = None) -> Session | None:
        now = time.monotonic() if now is None else now
        session = self._sessions.get(token or "")
        if session is None:
            return None
        if now - session.seen > SESSION_IDLE_SECONDS:
            del self._sessions[session.token]
            return None
        session.seen = now
        return session

    def new(self, *, logged_in: bool) -> Session:
        if len(self._sessions) >= MAX_SESSIONS:
            # the oldest session not logged in goes first: a flood of visits to the login
            # page must not log out the people who did log in
            waiting = [s for s in self._sessions.values() if not s.logged_in]
            oldest = min(waiting or self._sessions.values(), key=lambda s: s.seen)
            del self._sessions[oldest.token]
        session = Session(
            token=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            logged_in=logged_in or self._password is None,
            seen=time.monotonic(),
        )
        self._sessions[session.token] = session
        return session

    def drop(self, session: Session) -> None:
        self._sessions.pop(session.token, None)

    def password_ok(self, given: str) -> bool:
        if self._password is None:
            return True
        return hmac.compare_digest(self._password.encode(), given.strip().encode())


class Throttle:
    """Failed logins per client address: after n failures the next try waits
    ``THROTTLE_FIRST * 2**(n-1)`` seconds (at most THROTTLE_CAP)."""

    def __init__(self) -> None:
        self._failures: dict[str, tuple[int, float]] = {}  # address → (count, last failure)

    def wait_left(self, client: str, now: float | None = None) -> float:
        """Seconds before ``client`` may try again (0: now)."""
        now = time.monotonic() if now is None else now
        count, last = self._failures.get(client, (0, 0.0))
        if not count:
            return 0.0
        if now - last > THROTTLE_FORGET:
            del self._failures[client]
            return 0.0
        return max(0.0, last + self.delay(count) - now)

    def failed(self, client: str, now: float | None = None) -> int:
        """Record a failure; return how many in a row."""
        now = time.monotonic() if now is None else now
        count = self._failures.get(client, (0, 0.0))[0] + 1
        self._failures[client] = (count, now)
        if len(self._failures) > MAX_SESSIONS:  # bounded: forget the oldest
            oldest = min(self._failures, key=lambda k: self._failures[k][1])
            del self._failures[oldest]
        return count

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)

    @staticmethod
    def delay(count: int) -> float:
        return min(THROTTLE_FIRST * 2 ** (count - 1), THROTTLE_CAP)


def host_ok(host_header: str | None, listening_on_loopback: bool) -> bool:
    """Whether a request's ``Host`` may reach the dashboard: on loopback it must name this
    machine (a rebinding DNS name would not); elsewhere the password guards it."""
    if not listening_on_loopback:
        return True
    if not host_header:
        return False
    host = host_header.strip()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    else:
        host = host.rpartition(":")[0] if host.count(":") == 1 else host
    return is_loopback(host)


def safe_next(target: str | None, default: str = "/") -> str:
    """A path of this site to go back to after an action (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
