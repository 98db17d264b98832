"""What an inbox holds: which names are recordings, multi-track sessions, and whether the
inbox is there at all.

Copy and sync tools write under temporary names and rename into place; operating systems
leave their own files about. None of those is ever taken: hidden names (which covers
rsync's ``.name.XXXXXX``, Syncthing's ``.syncthing.*``, ``._*``, ``.nfs*``, ``.DS_Store``
and our own ``.cvsyncd-*.part``), the globs of ``IGNORED_GLOBS``, the system folders of
``IGNORED_DIRS``, the folder's ``ignore`` patterns, the folder's ``done_dir``,
``failed_dir`` and outbox, and every extension not in the folder's ``extensions``.

With ``multitrack = true`` each immediate subfolder of the inbox is one recording, one
file per speaker; files directly in the inbox stay single recordings.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from cvsyncd import fsinfo
from cvsyncd.config import Folder

IGNORED_GLOBS = (
    "*.part",
    "*.partial",
    "*.tmp",
    "*.temp",
    "*.crdownload",
    "*.download",
    "*.!sync",
    "~$*",
    "~syncthing~*",
    "*.swp",
    "*~",
)
IGNORED_NAMES = frozenset({"Thumbs.db", "desktop.ini", "Icon\r"})
IGNORED_DIRS = frozenset({"@eaDir", "#recycle", "#snapshot", "$RECYCLE.BIN", "lost+found"})
READY_MARKER = ".ready"


def globs(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regular expression matching what any of the glob ``patterns`` matches (as
    ``fnmatch.fnmatchcase``), or None for no patterns: a name is matched once, not once
    a pattern (a rescan matches every name of the inbox)."""
    return _globs(patterns) if patterns else None


@functools.lru_cache(maxsize=64)
def _globs(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


_IGNORED_GLOBS = globs(IGNORED_GLOBS)


def ignored_name(name: str) -> bool:
    """Whether a single path component is never a recording (or a folder of them)."""
    if name.startswith(".") or name in IGNORED_NAMES or name in IGNORED_DIRS:
        return True
    return _IGNORED_GLOBS is not None and _IGNORED_GLOBS.match(name) is not None


def system_entry(name: str) -> bool:
    """Whether a name is one the system or a file browser leaves in any folder (Synology's
    ``@eaDir``, macOS's ``.DS_Store`` and ``._*``, Windows' ``Thumbs.db``): never a
    user's file, so not worth a word when it is left behind or moved along."""
    return (
        name in IGNORED_NAMES
        or name in IGNORED_DIRS
        or name == ".DS_Store"
        or name.startswith("._")
    )


def ignored_by_folder(folder: Folder, rel: PurePosixPath) -> bool:
    """Whether the folder's own ``ignore`` patterns exclude ``rel`` (a name or a path)."""
    text = rel.as_posix()
    return any(
        fnmatch.fnmatchcase(rel.name, p)
        or fnmatch.fnmatchcase(text, p)
        or any(fnmatch.fnmatchcase(part, p) for part in rel.parts[:-1])
        for p in folder.ignore
    )


def reserved_places(folder: Folder) -> tuple[Path, ...]:
    return (folder.done_dir, folder.failed_dir, folder.outbox)


def relative(folder: Folder, path: Path) -> PurePosixPath | None:
    """``path`` relative to the inbox, or None if it is outside it or reserved."""
    try:
        rel = PurePosixPath(path.relative_to(folder.inbox).as_posix())
    except ValueError:
        return None
    for reserved in reserved_places(folder):
        if path == reserved or reserved in path.parents:
            return None
    return rel if rel.parts else None


def is_candidate(folder: Folder, path: Path) -> bool:
    """Whether ``path`` may be a single-track recording to take (by its name)."""
    rel = relative(folder, path)
    if rel is None or any(ignored_name(part) for part in rel.parts):
        return False
    if ignored_by_folder(folder, rel):
        return False
    if folder.multitrack and len(rel.parts) > 1:
        return False  # a track of a session: the session is the candidate
    return path.suffix.lower().lstrip(".") in folder.extensions


def why_not_taken(folder: Folder, path: Path) -> str | None:
    """For a visible file the folder does not take, the reason to tell the user once.

    Hidden and temporary names get no explanation: they are expected and silent.
    """
    rel = relative(folder, path)
    if rel is None or any(ignored_name(part) for part in rel.parts):
        return None
    if ignored_by_folder(folder, rel):
        return "it matches the folder's ignore patterns"
    extension = path.suffix.lower().lstrip(".")
    if extension not in folder.extensions:
        kinds = ", ".join(folder.extensions)
        return (
            f"{'.' + extension if extension else 'a name without extension'} is not among "
            f"the folder's extensions ({kinds})"
        )
    return None


def session_of(folder: Folder, path: Path) -> Path | None:
    """The multi-track session (immediate subfolder of the inbox) that ``path`` belongs to."""
    if not folder.multitrack:
        return None
    rel = relative(folder, path)
    if rel is None or len(rel.parts) < 2 or ignored_name(rel.parts[0]):
        return None
    if ignored_by_folder(folder, PurePosixPath(rel.parts[0])):
        return None
    return folder.inbox / rel.parts[0]


def session_tracks(folder: Folder, session: Path) -> list[tuple[Path, os.stat_result]]:
    """The track files of a session (directly inside it), sorted by name."""
    tracks = []
    try:
        entries = sorted(os.scandir(session), key=lambda e: e.name)
    except OSError:
        return []
    for entry in entries:
        if (
            ignored_name(entry.name)
            or entry.name.lower().rsplit(".", 1)[-1] not in folder.extensions
            or "." not in entry.name
        ):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            tracks.append((Path(entry.path), st))
    return tracks


def session_signature(folder: Folder, session: Path) -> tuple[object, ...]:
    """What must stay the same for a session to be settled: its tracks' names, sizes, mtimes."""
    return tuple((p.name, st.st_size, st.st_mtime_ns) for p, st in session_tracks(folder, session))


def walk(folder: Folder, start: Path | None = None) -> Iterator[tuple[str, os.stat_result]]:
    """Yield the candidate entries below ``start`` (default: the inbox) with their lstat,
    and for a multi-track folder its sessions (with the session folder's lstat).

    An entry whose name makes it a candidate is yielded whatever it is (a link, a FIFO …),
    so that the watcher can say why it is not taken; links are never followed, and ignored
    and reserved folders are not entered. Paths are strings: a rescan builds no ``Path``
    for the files it already knows. The rules of ``is_candidate`` are applied a folder at a
    time (a folder that passes need not be checked again for each file in it), so a rescan
    of an archive of 10,000 recordings is a walk and a ``lstat`` per file.
    """
    top = start or folder.inbox
    if folder.multitrack:
        for entry, st in _walk_sessions(folder, top):
            yield os.fspath(entry), st
        return
    patterns, extensions = globs(folder.ignore), folder.extensions
    if top != folder.inbox:
        rel_top = relative(folder, top)
        if rel_top is None or any(ignored_name(part) for part in rel_top.parts):
            return
        if patterns is not None and any(patterns.match(part) for part in rel_top.parts):
            return
    reserved = {os.fspath(place) for place in reserved_places(folder)}
    inbox_text = os.fspath(folder.inbox)
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        dirnames[:] = [
            d
            for d in dirnames
            if not ignored_name(d)
            and os.path.join(dirpath, d) not in reserved
            and not (patterns is not None and patterns.match(d))
        ]
        rel_dir = "" if patterns is None else os.path.relpath(dirpath, inbox_text)
        for name in filenames:
            if name.rpartition(".")[2].lower() not in extensions or "." not in name:
                continue
            if ignored_name(name):
                continue
            if patterns is not None:
                text = name if rel_dir == "." else f"{rel_dir.replace(os.sep, '/')}/{name}"
                if patterns.match(name) or patterns.match(text):
                    continue
            path = os.path.join(dirpath, name)
            try:
                yield path, os.lstat(path)
            except FileNotFoundError:
                continue


def _walk_sessions(folder: Folder, top: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """``walk`` for a multi-track folder: every file is checked against every rule."""
    reserved = set(reserved_places(folder))
    sessions: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        base = Path(dirpath)
        dirnames[:] = [d for d in dirnames if not ignored_name(d) and base / d not in reserved]
        for name in filenames:
            path = base / name
            session = session_of(folder, path)
            if session is not None:
                if session not in sessions and is_track_name(folder, name):
                    sessions.add(session)
                    session_stat = _lstat(session)
                    if session_stat is not None:
                        yield session, session_stat
                continue
            if not is_candidate(folder, path):
                continue
            st = _lstat(path)
            if st is not None:
                yield path, st


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def is_track_name(folder: Folder, name: str) -> bool:
    return (
        not ignored_name(name)
        and name.lower().rsplit(".", 1)[-1] in folder.extensions
        and "." in name
    )


def unavailable(folder: Folder, expected: tuple[int, str] | None = None) -> str | None:
    """Why the inbox cannot be trusted right now (None when it can).

    A missing inbox, or one whose filesystem is no longer the one it was on (a share that
    got unmounted leaves an empty local folder behind), is unavailable: its folder pauses,
    and nothing in it is forgotten or failed for having vanished. ``expected`` is the
    (device, filesystem type) the inbox was first seen on; the mount table is read only
    when the device changed, so this is one ``stat`` in the usual case.
    """
    try:
        st = os.stat(folder.inbox)
    except FileNotFoundError:
        return f"the inbox {folder.inbox} is missing"
    except OSError as exc:
        return f"the inbox {folder.inbox} cannot be read ({exc.strerror})"
    if not stat.S_ISDIR(st.st_mode):
        return f"the inbox {folder.inbox} is not a folder"
    if expected is not None and st.st_dev != expected[0]:
        now = fsinfo.filesystem_type(folder.inbox)
        if now != expected[1]:
            return (
                f"the inbox {folder.inbox} is on {now} now, not {expected[1]}: its share "
                "seems to be unmounted"
            )
    return None


def place_of(folder: Folder) -> tuple[int, str]:
    """The (device, filesystem type) the inbox is on now."""
    return os.stat(folder.inbox).st_dev, fsinfo.filesystem_type(folder.inbox)


def looks_emptied(folder: Folder) -> bool:
    """An inbox with nothing at all in it (not even done/ or failed/): a share that turned
    up empty, when cvsyncd still expects files there."""
    try:
        with os.scandir(folder.inbox) as entries:
            return next(entries, None) is None
    except OSError:
        return True
