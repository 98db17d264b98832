"""Test-only crash points: ``CVSYNCD_FAILPOINTS`` kills the process at a named place.

The crash tests prove that a ``kill -9`` at any step boundary loses nothing and bills
nothing twice. To hit each boundary exactly, the daemon is started with, for example::

    CVSYNCD_FAILPOINTS=submit.posted        # die right after the create-edit answer
    CVSYNCD_FAILPOINTS=output.before_rename:2   # die before renaming the 2nd output

and ``failpoint("submit.posted")`` in the code sends SIGKILL to its own process when the
named point is reached (the N-th time, with ``:N``). Unset — as always outside the tests —
a failpoint is one dictionary lookup. ``NAMES`` lists every point in the code.
"""

from __future__ import annotations

import os
import signal

ENV = "CVSYNCD_FAILPOINTS"

NAMES = (
    "intake.created",
    "upload.started",
    "upload.extracted",
    "upload.signed",
    "upload.sent",
    "upload.done",
    "submit.intent",
    "submit.posted",
    "submit.done",
    "poll.success",
    "poll.done",
    "fetch.planned",
    "fetch.remuxed",
    "fetch.tagged",
    "output.before_fsync",
    "output.before_rename",
    "output.after_rename",
    "fetch.committed",
    "fetch.done",
    "write.done",
    "dispose.planned",
    "dispose.moved",
    "dispose.deleted",
    "dispose.done",
    "migrate.statement",
    "migrate.committed",
)
# not a kill: the scheduler's loop hangs, to prove that the watchdog pings then stop
STALLS = ("scheduler.stall",)


def _parse(spec: str) -> dict[str, int]:
    points: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, count = item.partition(":")
        points[name] = int(count) if count.isdigit() else 1
    return points


_armed = _parse(os.environ.get(ENV, ""))


def failpoint(name: str) -> None:
    """Kill this process with SIGKILL if the failpoint ``name`` is armed and due."""
    if not _armed or name not in _armed:
        return
    _armed[name] -= 1
    if _armed[name] <= 0:
        os.kill(os.getpid(), signal.SIGKILL)


def armed(name: str) -> bool:
    """Whether a non-lethal test point (``STALLS``) is set."""
    return name in _armed
