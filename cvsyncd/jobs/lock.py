"""The lock on a state directory: one daemon (or one ``cvsyncd process`` run) at a time.

The holder writes its pid and kind into the lock file, so a second one, and the read-only
commands (``status``, ``check``), can name it.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from cvsyncd.errors import StoreLocked

LOCK_NAME = "daemon.lock"
LOCK_ATTEMPTS = 10


class StateDirLock:
    """An exclusive lock on a state directory, held for the life of a daemon."""

    def __init__(self, state_dir: Path, kind: str = "daemon"):
        self.path = state_dir / LOCK_NAME
        self.kind = kind  # "daemon", or "process" for a foreground `cvsyncd process`
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise StoreLocked naming the process that holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if not _try_lock(fd, attempts=LOCK_ATTEMPTS):
            pid, _, kind = os.read(fd, 64).decode("ascii", "replace").strip().partition(" ")
            os.close(fd)
            who = "a `cvsyncd process` run" if kind == "process" else "another cvsyncd daemon"
            raise StoreLocked(
                f"{who} (pid {pid or '?'}) is already using the state directory "
                f"{self.path.parent}; stop it first, or give this one its own state_dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {self.kind}".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _try_lock(fd: int, attempts: int = 1) -> bool:
    """Try to take an exclusive lock; a few tries ride out a status command's probe."""
    for attempt in range(attempts):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt + 1 < attempts:
                time.sleep(0.1)
    return False


def lock_holder(state_dir: Path) -> tuple[int, str] | None:
    """Who holds ``state_dir`` now: (pid, "daemon" or "process"), or None if nobody."""
    try:
        fd = os.open(state_dir / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return None
    try:
        if _try_lock(fd):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        pid, _, kind = os.read(fd, 64).decode("ascii", "replace").strip().partition(" ")
        return (int(pid) if pid.isdigit() else -1), (kind or "daemon")
    finally:
        os.close(fd)


def daemon_pid(state_dir: Path) -> int | None:
    """Return the pid of the daemon (or ``process`` run) holding ``state_dir``, or None."""
    holder = lock_holder(state_dir)
    return holder[0] if holder else None
