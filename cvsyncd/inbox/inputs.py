"""Reading an input only while it is provably the file that was taken.

Between the moment a recording is taken and the moment its bytes are read (for the hash,
the media check, the upload), its path may have become a symbolic link to a private file,
a FIFO that blocks every reader, a device, a folder, or simply another file. So no input is
ever opened by its path alone:

- the path is walked from a trusted folder (the inbox, or where a failed input was set
  aside) one component at a time with ``O_NOFOLLOW``: no symbolic link is followed, not
  even in a parent folder, so nothing outside that folder can be reached;
- the file is opened with ``O_NONBLOCK``, so a FIFO or a device cannot block the open;
- the checks are made on the open descriptor (``fstat``): a regular file, and, once a job
  has recorded it, the same inode, size and times as when it was taken.

Anything else is refused with :class:`InputRefused`, whose message names the path and
what to do. :func:`fingerprint` and :func:`open_taken` are the two ways in.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

from cvsyncd.errors import JobError
from cvsyncd.jobs import InputFile

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
HASH_BLOCK = 1024 * 1024
Reader = io.BufferedReader


class InputRefused(JobError):
    """The path no longer leads to a regular file inside its folder (or cannot be read).

    ``kind`` says what it is instead: "symlink", "fifo", "device", "socket", "directory",
    "missing", "unreadable". Never retryable: the user must put the recording back.
    """

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


class InputChanged(JobError):
    """The file is a regular file, but no longer the one the job took (or it changed while
    being read). The caller decides: take the new content, or leave the file alone."""

    def __init__(self, message: str, st: os.stat_result):
        super().__init__(message, retryable=True)
        self.stat = st


def kind_of(mode: int) -> str:
    """A word for the kind of file ``mode`` describes."""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISDIR(mode):
        return "directory"
    return "other"


WHAT = {
    "symlink": "a symbolic link (cvsyncd never follows links out of a folder it watches)",
    "fifo": "a named pipe (FIFO), not a recording",
    "device": "a device node, not a recording",
    "socket": "a socket, not a recording",
    "directory": "a folder, not a recording",
    "other": "not a regular file",
}


def refusal(path: Path, kind: str, detail: str = "") -> InputRefused:
    """The refusal for ``path`` being of ``kind``, with what to do about it."""
    if kind == "missing":
        return InputRefused(f"{path} is gone (deleted or moved away)", kind)
    if kind == "unreadable":
        return InputRefused(
            f"{path} cannot be read ({detail}); give the daemon's user read access", kind
        )
    return InputRefused(
        f"{path} is now {WHAT.get(kind, WHAT['other'])}; only regular files are read. "
        "Put the recording itself there to have it processed",
        kind,
    )


def _open_below(root: Path, rel: str) -> int:
    """Open ``root/rel`` for reading without following links or blocking; return the fd."""
    parts = PurePosixPath(rel).parts
    if not parts or any(p in ("", ".", "..") for p in parts) or rel.startswith("/"):
        raise InputRefused(f"{root / rel} is not a path inside {root}", "other")
    path = root / rel
    try:
        directory = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise refusal(path, "missing") from None
    try:
        for part in parts[:-1]:
            inner = os.open(part, _DIRECTORY, dir_fd=directory)
            os.close(directory)
            directory = inner
        return os.open(parts[-1], _FILE, dir_fd=directory)
    except OSError as exc:
        raise _explain(path, root, exc) from None
    finally:
        os.close(directory)


def _explain(path: Path, root: Path, exc: OSError) -> InputRefused:
    if exc.errno == errno.ENOENT:
        return refusal(path, "missing")
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        # O_NOFOLLOW met a link: the file itself, or one of its folders
        return refusal(path, "symlink")
    if exc.errno == errno.ENXIO:
        return refusal(path, "socket")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return refusal(path, "unreadable", exc.strerror or "permission denied")
    return refusal(path, "unreadable", exc.strerror or str(exc))


@contextmanager
def open_regular(root: Path, rel: str) -> Iterator[tuple[Reader, os.stat_result]]:
    """Open ``root/rel`` as a regular file inside ``root``; yield (file, its fstat).

    Raise InputRefused for a link (here or in a parent folder), a FIFO, a device, a
    folder, a missing or an unreadable file. The open never blocks.
    """
    fd = _open_below(root, rel)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise refusal(root / rel, kind_of(st.st_mode))
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        file: Reader = io.BufferedReader(io.FileIO(fd, "rb"), buffer_size=HASH_BLOCK)
    except BaseException:
        os.close(fd)
        raise
    with file:
        yield file, st


def same_state(a: os.stat_result, b: os.stat_result) -> bool:
    """Whether two stats of one open file show it unchanged (size and both times)."""
    return (a.st_ino, a.st_size, a.st_mtime_ns, a.st_ctime_ns) == (
        b.st_ino,
        b.st_size,
        b.st_mtime_ns,
        b.st_ctime_ns,
    )


def fingerprint(root: Path, rel: str) -> tuple[os.stat_result, str]:
    """The stat and SHA-256 of the regular file ``root/rel``, read through one descriptor.

    Raise InputRefused if it is not a regular file inside ``root``, InputChanged if it
    changed while it was being read (it is still being written: let it settle).
    """
    with open_regular(root, rel) as (file, before):
        digest = hashlib.file_digest(file, "sha256").hexdigest()
        after = os.fstat(file.fileno())
    if not same_state(before, after):
        raise InputChanged(f"{root / rel} changed while it was being read", after)
    return after, digest


@contextmanager
def open_taken(root: Path, rel: str, taken: InputFile) -> Iterator[IO[bytes]]:
    """Open the input a job took, proving on the descriptor that it is still that file.

    Raise InputRefused if the path is no longer a regular file inside ``root``, and
    InputChanged if it is another file or the same one changed since it was taken.
    """
    with open_regular(root, rel) as (file, st):
        if not taken.matches(st):
            raise InputChanged(f"{root / rel} is no longer the file that was taken", st)
        yield file


def still_taken(root: Path, rel: str, taken: InputFile) -> bool:
    """Whether ``root/rel`` is, right now, the regular file a job took (no link followed)."""
    try:
        with open_regular(root, rel) as (_, st):
            return taken.matches(st)
    except InputRefused:
        return False
