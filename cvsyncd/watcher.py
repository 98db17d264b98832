"""Watching the inboxes: which files count, and when a file is complete enough to take.

A watchdog observer per inbox (recursive) reports changes; a startup scan and a periodic
rescan catch whatever arrived while cvsyncd was not looking, or what events missed. A
file is taken only after its size and mtime have stayed the same for ``settle_seconds``
(the pipeline re-checks them after fingerprinting). Temp, hidden and system names, our
own ``done_dir``/``failed_dir`` and files that are not media are never taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
import stat
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from cvsyncd.config import Folder

DEFAULT_EXTENSIONS = frozenset(
    {".mp3", ".wav", ".m4a", ".aac", ".flac", ".ogg", ".opus", ".mp4", ".mov", ".mkv", ".webm"}
)
# names that copy tools, sync tools and operating systems leave while writing or for
# themselves (hidden names, which start with a dot, are always ignored)
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
RESCAN_SECONDS = 300.0
OBSERVER_CHECK_SECONDS = 10.0

Intake = Callable[[Folder, Path], Awaitable[str]]
IsKnown = Callable[[Folder, str, int, int], bool]


def ignored_name(name: str) -> bool:
    """Whether a single path component is never a recording (or a folder of them)."""
    if name.startswith(".") or name in IGNORED_NAMES or name in IGNORED_DIRS:
        return True
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in IGNORED_GLOBS)


def is_candidate(folder: Folder, path: Path) -> bool:
    """Whether ``path`` (inside ``folder.inbox``) may be a recording to take."""
    try:
        rel = path.relative_to(folder.inbox)
    except ValueError:
        return False
    if not rel.parts or any(ignored_name(part) for part in rel.parts):
        return False
    for reserved in (folder.done_dir, folder.failed_dir, folder.outbox):
        if path == reserved or reserved in path.parents:
            return False
    return path.suffix.lower() in DEFAULT_EXTENSIONS


def scan_inbox(folder: Folder, start: Path | None = None) -> Iterator[tuple[Path, os.stat_result]]:
    """Yield the candidate files below ``start`` (default: the inbox) with their stat.

    Symlinks are not followed; ignored and reserved directories are not entered.
    """
    reserved = {folder.done_dir, folder.failed_dir, folder.outbox}
    for dirpath, dirnames, filenames in os.walk(start or folder.inbox, followlinks=False):
        base = Path(dirpath)
        dirnames[:] = [d for d in dirnames if not ignored_name(d) and base / d not in reserved]
        for name in filenames:
            path = base / name
            if not is_candidate(folder, path):
                continue
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                yield path, st


@dataclass
class Candidate:
    folder: Folder
    size: int = -1
    mtime_ns: int = -1
    since: float = 0.0


class _Forwarder(FileSystemEventHandler):
    """Runs in the observer's thread: hands every relevant path to the event loop."""

    def __init__(
        self,
        folder: Folder,
        loop: asyncio.AbstractEventLoop,
        note: Callable[[Folder, Path, str], None],
    ):
        self.folder = folder
        self.loop = loop
        self.note = note

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        raw = event.dest_path if event.event_type == "moved" else event.src_path
        path = Path(os.fsdecode(raw))
        if event.event_type == "deleted":
            what = "gone"
        elif event.is_directory:
            if event.event_type not in ("created", "moved"):
                return  # a folder's own mtime changing says nothing new
            what = "directory"  # e.g. a folder moved in with files inside: no event per file
        else:
            what = "file"
        self.loop.call_soon_threadsafe(self.note, self.folder, path, what)


class Watcher:
    """Finds settled files in the inboxes and hands them to ``intake`` one at a time."""

    def __init__(
        self,
        folders: tuple[Folder, ...],
        settle_seconds: float,
        intake: Intake,
        is_known: IsKnown,
        *,
        rescan_seconds: float = RESCAN_SECONDS,
    ):
        self.folders = folders
        self.settle_seconds = settle_seconds
        self.intake = intake
        self.is_known = is_known
        self.rescan_seconds = rescan_seconds
        self.log = structlog.get_logger("cvsyncd.watcher")
        self._candidates: dict[Path, Candidate] = {}
        self._skipped: dict[Path, tuple[int, int]] = {}  # intake said "not yet" (e.g. empty)
        self._observers: dict[str, BaseObserver | None] = {}  # None: inbox missing
        self._ready: asyncio.Queue[tuple[Folder, Path]] = asyncio.Queue()
        self._pending_scans: list[tuple[Folder, Path]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def tick(self) -> float:
        return max(0.05, min(1.0, self.settle_seconds / 4))

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until ``stop`` is set."""
        self._loop = asyncio.get_running_loop()
        taker = asyncio.create_task(self._take_ready(), name="intake")
        try:
            self._ensure_observers()
            await self._scan_all()
            next_rescan = time.monotonic() + self.rescan_seconds
            next_check = time.monotonic() + OBSERVER_CHECK_SECONDS
            while not stop.is_set():
                await self._scan_pending_dirs()
                await self._check_candidates()
                now = time.monotonic()
                if now >= next_check:
                    self._ensure_observers()
                    next_check = now + OBSERVER_CHECK_SECONDS
                if now >= next_rescan:
                    await self._scan_all()
                    next_rescan = now + self.rescan_seconds
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.tick)
        finally:
            taker.cancel()
            await asyncio.gather(taker, return_exceptions=True)
            self._stop_observers()

    # -- observers ------------------------------------------------------------------

    def _ensure_observers(self) -> None:
        """Start an observer for every inbox that lacks a live one (and exists)."""
        assert self._loop is not None
        for folder in self.folders:
            known = folder.key in self._observers
            observer = self._observers.get(folder.key)
            if observer is not None and observer.is_alive():
                continue
            if not folder.inbox.is_dir():
                if not known or observer is not None:
                    self.log.error(
                        "inbox is missing; waiting for it to appear",
                        folder=folder.name,
                        inbox=str(folder.inbox),
                    )
                self._observers[folder.key] = None
                continue
            if observer is not None:
                self.log.warning(
                    "the observer of an inbox stopped; restarting it",
                    folder=folder.name,
                    inbox=str(folder.inbox),
                )
            elif known:
                self.log.info("inbox is back", folder=folder.name, inbox=str(folder.inbox))
            if known:  # whatever arrived while nobody was watching
                self._pending_scans.append((folder, folder.inbox))
            fresh = Observer()
            fresh.schedule(
                _Forwarder(folder, self._loop, self._note), str(folder.inbox), recursive=True
            )
            fresh.daemon = True
            fresh.start()
            self._observers[folder.key] = fresh
            self.log.info("watching", folder=folder.name, inbox=str(folder.inbox), mode="events")

    def _stop_observers(self) -> None:
        live = [o for o in self._observers.values() if o is not None]
        for observer in live:
            observer.stop()
        for observer in live:
            if observer.is_alive():
                observer.join(timeout=5)
        self._observers.clear()

    # -- noticing files -------------------------------------------------------------

    def _note(self, folder: Folder, path: Path, what: str) -> None:
        """Called in the loop for each event: ``what`` is "file", "directory" or "gone"."""
        if what == "directory":
            self._pending_scans.append((folder, path))
        elif what == "gone":
            self._candidates.pop(path, None)
            self._skipped.pop(path, None)
        elif is_candidate(folder, path):
            self._candidates.setdefault(path, Candidate(folder))

    async def _scan_all(self) -> None:
        for folder in self.folders:
            if folder.inbox.is_dir():
                await self._scan(folder, folder.inbox)

    async def _scan_pending_dirs(self) -> None:
        while self._pending_scans:
            folder, directory = self._pending_scans.pop()
            await self._scan(folder, directory)

    async def _scan(self, folder: Folder, directory: Path) -> None:
        """Note every unknown candidate file below ``directory``."""
        found = await asyncio.to_thread(lambda: list(scan_inbox(folder, directory)))
        for path, st in found:
            signature = (st.st_size, st.st_mtime_ns)
            if path in self._candidates or self._skipped.get(path) == signature:
                continue
            rel = path.relative_to(folder.inbox).as_posix()
            if self.is_known(folder, rel, st.st_size, st.st_mtime_ns):
                continue
            self._candidates[path] = Candidate(folder)

    # -- settling -------------------------------------------------------------------

    async def _check_candidates(self) -> None:
        """Stat every candidate; queue those unchanged for the whole settle window."""
        if not self._candidates:
            return
        paths = list(self._candidates)
        stats = await asyncio.to_thread(_lstat_all, paths)
        now = time.monotonic()
        for path, st in zip(paths, stats, strict=True):
            candidate = self._candidates.get(path)
            if candidate is None:
                continue
            if st is None or not stat.S_ISREG(st.st_mode):
                if st is not None and stat.S_ISLNK(st.st_mode):
                    self.log.warning(
                        "symlink in inbox not followed; skipped",
                        folder=candidate.folder.name,
                        path=str(path),
                    )
                del self._candidates[path]
                continue
            if (st.st_size, st.st_mtime_ns) != (candidate.size, candidate.mtime_ns):
                candidate.size, candidate.mtime_ns, candidate.since = (
                    st.st_size,
                    st.st_mtime_ns,
                    now,
                )
                continue
            if now - candidate.since >= self.settle_seconds:
                del self._candidates[path]
                self._ready.put_nowait((candidate.folder, path))

    async def _take_ready(self) -> None:
        """Hand settled files to the pipeline, one at a time (fingerprinting reads them)."""
        while True:
            folder, path = await self._ready.get()
            try:
                verdict = await self.intake(folder, path)
            except Exception:
                self.log.exception("could not take a file", folder=folder.name, path=str(path))
                verdict = "error"
            if verdict == "changed":
                self._candidates.setdefault(path, Candidate(folder))
            elif verdict == "skipped":
                with contextlib.suppress(OSError):
                    st = os.lstat(path)
                    self._skipped[path] = (st.st_size, st.st_mtime_ns)


def _lstat_all(paths: list[Path]) -> list[os.stat_result | None]:
    out: list[os.stat_result | None] = []
    for path in paths:
        try:
            out.append(os.lstat(path))
        except OSError:
            out.append(None)
    return out
