"""When an inbox entry is complete: its look, compared over time.

A file is ready once its size and mtime stayed the same for ``settle_seconds``; a
multi-track session once its ``.ready`` marker is there and its tracks settled, or when
nothing in it changed for ``multitrack_settle_seconds``. An entry that is not a file or a
folder (a link, a FIFO, a device) is never ready: its look says what it is instead.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cvsyncd.config import Folder
from cvsyncd.inbox import inputs, rules


@dataclass
class Candidate:
    """An inbox entry being watched until it settles."""

    folder: Folder
    signature: object = None  # its look when last checked
    since: float = 0.0  # monotonic time it has looked like that since
    session: bool = False  # a multi-track session folder


def settle_window(candidate: Candidate, path: Path, settle_seconds: float) -> float:
    """How long ``path`` must stay unchanged before it is taken."""
    if not candidate.session or (path / rules.READY_MARKER).exists():
        return settle_seconds
    return candidate.folder.multitrack_settle_seconds


def looks(paths: list[Path], candidates: Mapping[Path, Candidate]) -> list[object]:
    """What each candidate looks like now (call it in a worker thread): None if gone, its
    tracks for a session, (size, mtime) for a file, else the kind of thing it is
    ("symlink", "fifo" …: not taken)."""
    out: list[object] = []
    for path in paths:
        try:
            st = os.lstat(path)
        except OSError:
            out.append(None)
            continue
        if stat.S_ISDIR(st.st_mode):
            candidate = candidates.get(path)
            tracks = rules.session_signature(candidate.folder, path) if candidate else ()
            out.append(tracks if tracks else "directory")
        elif stat.S_ISREG(st.st_mode):
            out.append((st.st_size, st.st_mtime_ns))
        else:
            out.append(inputs.kind_of(st.st_mode))
    return out


def is_directory(path: Path) -> bool:
    """Whether ``path`` is a folder itself (a link to one is not)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False
