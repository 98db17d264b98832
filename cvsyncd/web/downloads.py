"""Output downloads: only a file the job recorded as its written output, inside its
folder's outbox, opened without following a link out of it. No path ever comes from the
URL: it names a job and the position of an output in that job's list."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from starlette.responses import StreamingResponse

from cvsyncd.config import Folder
from cvsyncd.jobs import Job
from cvsyncd.web.views import written_outputs

CHUNK = 256 * 1024
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


class OutputMissing(Exception):
    """No such output, or it is not (any more) a regular file inside the outbox."""


def open_output(job: Job, folder: Folder, n: int) -> tuple[int, str, int]:
    """Open the job's ``n``-th written output: (descriptor, file name, size).

    The recorded path must lie inside the outbox (lexically, no ``..``); it is then
    opened one component at a time from the outbox, none of them a symbolic link, and the
    last must be a regular file. Raise OutputMissing otherwise.
    """
    paths = written_outputs(job)
    if not 0 <= n < len(paths):
        raise OutputMissing(f"job {job.id} has no output {n}")
    path = Path(paths[n])
    try:
        relative = path.relative_to(folder.outbox)
    except ValueError:
        raise OutputMissing("that output is not in the folder's outbox") from None
    parts = relative.parts
    if not parts or any(p in ("", ".", "..") for p in parts):
        raise OutputMissing("that output is not in the folder's outbox")
    try:
        fd = os.open(folder.outbox, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        raise OutputMissing("the folder's outbox cannot be opened") from None
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
        file_fd = os.open(parts[-1], os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW, dir_fd=fd)
    except OSError:
        raise OutputMissing(f"{relative} is gone, or is a link; it is not served") from None
    finally:
        os.close(fd)
    st = os.fstat(file_fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(file_fd)
        raise OutputMissing(f"{relative} is not a regular file; it is not served")
    os.set_blocking(file_fd, True)
    return file_fd, parts[-1], st.st_size


def stream(fd: int, name: str, size: int) -> StreamingResponse:
    """The open file as an attachment, read in chunks (in a thread) and then closed."""

    def chunks() -> Iterator[bytes]:
        left = size  # never more than announced, should the file grow meanwhile
        with contextlib.closing(os.fdopen(fd, "rb", closefd=True)) as file:
            while left > 0 and (block := file.read(min(CHUNK, left))):
                left -= len(block)
                yield block

    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_")
    return StreamingResponse(
        chunks(),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(size),
            "Content-Disposition": (
                f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
            ),
        },
    )
