"""Whether the daemon is healthy: one rule for systemd's watchdog, ``/healthz`` and
``cvsyncd health``.

Healthy means: the scheduler's and the watcher's loops still turn (a loop that is busy,
not resting, and has not turned for ``limit`` seconds is stalled — the rule systemd's
watchdog has always used), and the state database answers a trivial query.

Inside the daemon the supervisor asks :func:`check` every ``interval`` seconds (half the
watchdog's interval under systemd, HEALTH_SECONDS otherwise), pings the watchdog only
when it holds, and writes the verdict to ``health.json`` in the state directory. Another
process (``cvsyncd health``, a container's HEALTHCHECK) reads that file with
:func:`read_verdict`: it also checks that a live daemon holds the state directory and that
the file is fresh.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cvsyncd.errors import StoreError

HEALTH_FILE = "health.json"
HEALTH_SECONDS = 15.0  # how often the verdict is written without systemd's watchdog
STALL_SECONDS = 60.0  # without systemd: a busy loop this long without a turn is stalled
# (under systemd: twice the watchdog's ping interval, as it always was)
STALE_TURNS = 3  # a verdict older than this many intervals is no verdict


class Loop(Protocol):
    resting: bool
    heartbeat: float


class Pingable(Protocol):
    def ping(self) -> None: ...


@dataclass(frozen=True)
class Verdict:
    ok: bool
    problems: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return "ok" if self.ok else "; ".join(self.problems)


def stalled(loops: Iterable[tuple[str, Loop]], limit: float, now: float | None = None) -> list[str]:
    """The names of the loops that are busy and have not turned for ``limit`` seconds."""
    now = time.monotonic() if now is None else now
    return [name for name, loop in loops if not loop.resting and now - loop.heartbeat > limit]


def check(loops: Iterable[tuple[str, Loop]], store: Pingable, limit: float) -> Verdict:
    """The health of the running daemon (in its own process)."""
    problems = [
        f"the {name} loop has not turned for over {limit:g} s" for name in stalled(loops, limit)
    ]
    try:
        store.ping()
    except sqlite3.Error as exc:
        problems.append(f"the state database does not answer ({exc})")
    except StoreError as exc:  # the shared store (PostgreSQL) is away
        problems.append(str(exc))
    return Verdict(not problems, tuple(problems))


def write_verdict(state_dir: Path, verdict: Verdict, interval: float) -> None:
    """Replace ``health.json`` (temp file and rename: a reader never sees half of it). Not
    fsynced: it is rewritten every ``interval`` seconds and means nothing after a crash."""
    body = {
        "ok": verdict.ok,
        "problems": list(verdict.problems),
        "at": time.time(),
        "interval": interval,
        "pid": os.getpid(),
    }
    temp = state_dir / f".{HEALTH_FILE}.{os.getpid()}.tmp"
    with contextlib.suppress(OSError):  # a full disk must not stop the daemon's checks
        temp.write_text(json.dumps(body), encoding="utf-8")
        os.replace(temp, state_dir / HEALTH_FILE)


def remove_verdict(state_dir: Path) -> None:
    with contextlib.suppress(OSError):
        (state_dir / HEALTH_FILE).unlink()


def read_verdict(state_dir: Path, daemon_pid: int | None, now: float | None = None) -> Verdict:
    """The verdict the daemon holding ``state_dir`` (``daemon_pid``, from its lock) wrote,
    if it is fresh and its own; for ``cvsyncd health``."""
    if daemon_pid is None:
        return Verdict(False, ("no daemon is running on this state directory",))
    try:
        body = json.loads((state_dir / HEALTH_FILE).read_text(encoding="utf-8"))
        at, interval, pid = float(body["at"]), float(body["interval"]), int(body["pid"])
        ok, problems = bool(body["ok"]), tuple(str(p) for p in body.get("problems", ()))
    except (OSError, ValueError, KeyError, TypeError):
        return Verdict(False, (f"the daemon (pid {daemon_pid}) has written no health verdict yet",))
    now = time.time() if now is None else now
    if pid != daemon_pid:
        return Verdict(
            False, (f"the health verdict is from pid {pid}, not the daemon {daemon_pid}",)
        )
    age = now - at
    if age > STALE_TURNS * interval:
        return Verdict(
            False, (f"the daemon's last health verdict is {age:.0f} s old: its loop is stuck",)
        )
    return Verdict(ok, problems)
