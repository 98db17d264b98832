"""The lock on a state directory: one daemon (or one ``cvsyncd process`` run) at a time.

The holder writes its pid and kind into the lock file, so a second one, and the read-only
commands (``status``, ``check``), can name it. A daemon that reacts to SIGUSR1 ("the store
changed: look now") says so there too: commands that write to the store for it (``pause``,
``resume``, ``forget``, ``retry``) wake it with that signal, so it can rest between long
turns and still obey at once. Only a holder that says so is signalled: SIGUSR1 would end a
process that does not expect it (an older daemon, or a ``cvsyncd process`` run).
"""

from __future__ import annotations

import fcntl
import os
import signal
import time
from pathlib import Path

from cvsyncd.errors import StoreLocked

LOCK_NAME = "daemon.lock"
LOCK_ATTEMPTS = 10
WAKE_SIGNAL = signal.SIGUSR1
WAKE_MARK = "wakes-on-usr1"  # in the lock file: the holder handles WAKE_SIGNAL


class StateDirLock:
    """An exclusive lock on a state directory, held for the life of a daemon."""

    def __init__(self, state_dir: Path, kind: str = "daemon", wakes: bool = False):
        self.path = state_dir / LOCK_NAME
        self.kind = kind  # "daemon", or "process" for a foreground `cvsyncd process`
        self.wakes = wakes  # the holder handles WAKE_SIGNAL (say so only once it does)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise StoreLocked naming the process that holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if not _try_lock(fd, attempts=LOCK_ATTEMPTS):
            pid, kind, _ = _holder_line(os.read(fd, 64))
            os.close(fd)
            who = "a `cvsyncd process` run" if kind == "process" else "another cvsyncd daemon"
            raise StoreLocked(
                f"{who} (pid {pid or '?'}) is already using the state directory "
                f"{self.path.parent}; stop it first, or give this one its own state_dir"
            ) from None
        os.ftruncate(fd, 0)
        mark = f" {WAKE_MARK}" if self.wakes else ""
        os.write(fd, f"{os.getpid()} {self.kind}{mark}".encode())
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


def _holder_line(raw: bytes) -> tuple[str, str, bool]:
    """The lock file's "PID KIND [WAKE_MARK]": pid (text), kind, and whether it wakes."""
    words = raw.decode("ascii", "replace").split()
    pid = words[0] if words else ""
    kind = words[1] if len(words) > 1 else "daemon"
    return pid, kind, WAKE_MARK in words[2:]


def _holder(state_dir: Path) -> tuple[int, str, bool] | None:
    try:
        fd = os.open(state_dir / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return None
    try:
        if _try_lock(fd):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        pid, kind, wakes = _holder_line(os.read(fd, 64))
        return (int(pid) if pid.isdigit() else -1), kind, wakes
    finally:
        os.close(fd)


def lock_holder(state_dir: Path) -> tuple[int, str] | None:
    """Who holds ``state_dir`` now: (pid, "daemon" or "process"), or None if nobody."""
    holder = _holder(state_dir)
    return holder[:2] if holder else None


def wake_daemon(state_dir: Path) -> bool:
    """Tell the daemon holding ``state_dir`` that the store changed (it looks at once).

    False when there is none, it does not say it handles the signal, or it may not be
    signalled (another user's daemon): it then sees the change at its next turn.
    """
    holder = _holder(state_dir)
    if holder is None or holder[1] != "daemon" or not holder[2] or holder[0] <= 0:
        return False
    try:
        os.kill(holder[0], WAKE_SIGNAL)
    except OSError:  # gone meanwhile, or not ours to signal
        return False
    return True


def daemon_pid(state_dir: Path) -> int | None:
    """Return the pid of the daemon (or ``process`` run) holding ``state_dir``, or None."""
    holder = lock_holder(state_dir)
    return holder[0] if holder else None
