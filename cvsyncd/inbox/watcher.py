"""Watching the inboxes, and deciding when a file (or a multi-track session) is complete.

Each inbox gets a watchdog observer (``observers.py``). A startup scan and a periodic
rescan (``rescan_seconds``) catch what arrived while nobody looked or what events missed;
a dead observer is restarted.

An entry is handed to the pipeline only once it settled (``settling.py``; the pipeline
re-checks it after fingerprinting). An inbox that vanishes, or whose share is
unmounted, pauses its folder: nothing in it is taken, failed or forgotten until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

from cvsyncd import events as ev
from cvsyncd.aio import wait_for_any
from cvsyncd.config import Folder
from cvsyncd.config.overrides import OVERRIDE_NAME
from cvsyncd.inbox import inputs
from cvsyncd.inbox import rules as inbox
from cvsyncd.inbox.observers import FolderWatch, start_observer, stop_observer
from cvsyncd.inbox.settling import Candidate, is_directory, looks, settle_window

CHECK_SECONDS = 3.0  # how often observers and inbox availability are checked
REST_CHECK_SECONDS = 15.0  # the same, at rest: nothing settling, every inbox fine

Intake = Callable[[Folder, Path], Awaitable[str]]
IsKnown = Callable[[Folder, str, int, int], bool]


class Watcher:
    """Finds settled recordings in the inboxes and hands them to ``intake`` one at a time."""

    def __init__(
        self,
        folders: tuple[Folder, ...],
        settle_seconds: float,
        intake: Intake,
        is_known: IsKnown,
        on_unavailable: Callable[[Folder, str], None] | None = None,
    ):
        self.settle_seconds = settle_seconds
        self.on_unavailable = on_unavailable  # told when an inbox goes (the alerts)
        self.intake = intake
        self.is_known = is_known
        self.log = structlog.get_logger("cvsyncd.watcher")
        self._watches: dict[str, FolderWatch] = {f.key: FolderWatch(f) for f in folders}
        self._candidates: dict[Path, Candidate] = {}
        self._skipped: dict[Path, object] = {}  # intake said "not yet" (e.g. gone)
        # entries not taken for a reason the user can fix (a link, a FIFO, an empty or
        # unreadable file): listed by `cvsyncd status` until they go away
        self._refused: dict[Path, tuple[Folder, str]] = {}
        # files that already have a job, as they looked then: rescans skip them without
        # asking the store (a rescan of 10,000 done files costs a walk, not 10,000 queries)
        self._known: dict[str, object] = {}  # by os.fspath: a rescan builds no Path for them
        self._ready: asyncio.Queue[tuple[Folder, Path]] = asyncio.Queue()
        self._pending_scans: list[tuple[Folder, Path]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._activity = asyncio.Event()
        # set when what the supervisor shows changed: an inbox's availability, an entry
        # refused, a recording handed to the pipeline (it may rest until then)
        self.news = asyncio.Event()
        self.started = asyncio.Event()  # the observers of every available inbox are running
        self.heartbeat = time.monotonic()  # the last turn of the loop (for the watchdog)
        self.resting = False

    @property
    def tick(self) -> float:
        return max(0.05, min(1.0, self.settle_seconds / 4))

    def unavailable(self, folder_key: str) -> str | None:
        """Why a folder's inbox cannot be used now (None if it can)."""
        watch = self._watches.get(folder_key)
        return watch.problem if watch else None

    def refusals(self) -> list[dict[str, str]]:
        """The inbox entries not taken for a reason the user can fix, and why."""
        return [
            {"folder": folder.name, "path": str(path), "reason": reason}
            for path, (folder, reason) in sorted(self._refused.items())
        ]

    def _refuse(self, folder: Folder, path: Path, reason: str) -> None:
        if self._refused.get(path, (None, None))[1] != reason:
            self.log.warning(ev.INBOX_NOT_TAKEN, folder=folder.name, path=str(path), reason=reason)
            self.news.set()
        self._refused[path] = (folder, reason)

    def _at_rest(self) -> bool:
        """Nothing settling or waiting for a scan, and every inbox watched and fine."""
        return not (self._candidates or self._pending_scans) and all(
            w.problem is None and w.observer is not None for w in self._watches.values()
        )

    def rescan_all(self) -> None:
        """Forget what was known and look at every inbox again soon (after ``forget``)."""
        self._known.clear()
        for watch in self._watches.values():
            watch.next_rescan = 0.0

    def reconfigure(self, folders: tuple[Folder, ...], settle_seconds: float) -> None:
        """Apply a reloaded config: start watching new folders, stop watching removed ones."""
        self.settle_seconds = settle_seconds
        wanted = {f.key: f for f in folders}
        for key in list(self._watches):
            if key not in wanted:
                stop_observer(self._watches.pop(key))
                self.log.info(ev.INBOX_UNWATCHED, inbox=key)
        for key, folder in wanted.items():
            watch = self._watches.get(key)
            if watch is None:
                self._watches[key] = FolderWatch(folder)
            elif watch.folder != folder:
                stop_observer(watch)  # settings changed: a fresh observer and scan
                self._watches[key] = FolderWatch(folder)
        self._candidates = {p: c for p, c in self._candidates.items() if c.folder.key in wanted}

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until ``stop`` is set."""
        self._loop = asyncio.get_running_loop()
        taker = asyncio.create_task(self._take_ready(), name="intake")
        try:
            await self._check_inboxes(scan=False)  # observers first: READY comes after them
            self.started.set()
            next_check = 0.0
            while not stop.is_set():
                now = self.heartbeat = time.monotonic()
                if now >= next_check:
                    await self._check_inboxes()
                    next_check = now + (REST_CHECK_SECONDS if self._at_rest() else CHECK_SECONDS)
                    rescans = [w.next_rescan for w in self._watches.values() if w.problem is None]
                    next_check = min([next_check, *rescans])
                await self._scan_pending_dirs()
                await self._check_candidates()
                # at rest (nothing settling), wake only for the inbox checks or an event
                wait = (
                    self.tick
                    if self._candidates or self._pending_scans
                    else max(0.05, next_check - time.monotonic())
                )
                self._activity.clear()
                self.resting = True  # waiting for events is not a stall
                await wait_for_any(stop, self._activity, timeout=wait)
                self.resting = False
        finally:
            taker.cancel()
            await asyncio.gather(taker, return_exceptions=True)
            for watch in self._watches.values():
                stop_observer(watch)

    # -- inboxes and their observers ------------------------------------------------

    async def _check_inboxes(self, scan: bool = True) -> None:
        """Check each inbox is there, (re)start observers, run due rescans."""
        for watch in list(self._watches.values()):
            folder = watch.folder
            problem = await asyncio.to_thread(inbox.unavailable, folder, watch.place)
            if problem:
                if watch.problem != problem:
                    self.log.error(
                        ev.INBOX_UNAVAILABLE,
                        folder=folder.name,
                        reason=problem,
                    )
                    self.news.set()
                    if self.on_unavailable is not None and watch.problem is None:
                        self.on_unavailable(folder, problem)
                watch.problem = problem
                stop_observer(watch)
                continue
            if watch.problem is not None:
                self.log.info(
                    ev.INBOX_BACK,
                    folder=folder.name,
                    inbox=str(folder.inbox),
                )
                watch.problem = None
                self.news.set()
                watch.next_rescan = 0.0  # whatever arrived meanwhile
            if watch.observer is not None and not watch.observer.is_alive():
                self.log.warning(
                    ev.INBOX_OBSERVER_RESTARTED,
                    folder=folder.name,
                    inbox=str(folder.inbox),
                )
                stop_observer(watch)
                watch.next_rescan = 0.0
            if watch.observer is None:
                assert self._loop is not None
                chosen = await asyncio.to_thread(
                    start_observer, watch, self._loop, self._note, self.settle_seconds
                )
                self.log.info(
                    ev.INBOX_WATCHING,
                    folder=folder.name,
                    inbox=str(folder.inbox),
                    mode=watch.mode,
                    filesystem=watch.place[1] if watch.place else "?",
                    chosen=chosen,
                )
            if scan and time.monotonic() >= watch.next_rescan:
                watch.next_rescan = time.monotonic() + folder.rescan_seconds
                await self._scan(folder, folder.inbox)

    # -- noticing files -------------------------------------------------------------

    def _note(self, folder: Folder, path: Path, what: str) -> None:
        """Called in the loop for each event: ``what`` is "file", "directory" or "gone"."""
        self._activity.set()
        if what == "directory":
            self._pending_scans.append((folder, path))
            return
        if what == "gone":
            self._candidates.pop(path, None)
            self._skipped.pop(path, None)
            self._known.pop(os.fspath(path), None)
            self._refused.pop(path, None)
        if path.name == OVERRIDE_NAME:  # held recordings below may be taken now
            self._pending_scans.append((folder, path.parent))
            return
        session = inbox.session_of(folder, path)
        if session is not None:
            self._candidates.setdefault(session, Candidate(folder, session=True))
        elif what == "file" and inbox.is_candidate(folder, path):
            self._candidates.setdefault(path, Candidate(folder))
        elif what == "file":
            self._explain(folder, path)

    def _explain(self, folder: Folder, path: Path) -> None:
        """Say once why a visible file is not taken (a .pdf of show notes, say)."""
        watch = self._watches.get(folder.key)
        reason = inbox.why_not_taken(folder, path)
        if watch is None or reason is None or path in watch.told or not path.is_file():
            return
        watch.told.add(path)
        self.log.info(ev.INBOX_NOT_TAKEN, folder=folder.name, path=str(path), reason=reason)

    async def _scan_pending_dirs(self) -> None:
        while self._pending_scans:
            folder, directory = self._pending_scans.pop()
            if folder.key in self._watches and directory.is_dir():
                await self._scan(folder, directory)

    async def _scan(self, folder: Folder, directory: Path) -> None:
        """Note every candidate below ``directory`` that is not known yet; list what is
        there but cannot be taken (a link, a FIFO …), and forget listed entries that left.

        The walk runs in a worker thread and keeps only what the loop must look at: a file
        already known or skipped, unchanged, is passed over there, so a rescan of an
        archive holds no list of it and memory stays flat. (The thread only looks things
        up in the loop's dictionaries; a lookup that races a change costs one more look.)
        """
        listed = [
            path
            for path, (owner, _) in self._refused.items()
            if owner.key == folder.key and path.is_relative_to(directory)
        ]
        candidates, known, skipped = self._candidates, self._known, self._skipped

        def look() -> tuple[list[tuple[Path, os.stat_result]], set[Path]]:
            wanted, still_there = set(listed), set()
            found = []
            for name, st in inbox.walk(folder, directory):
                if stat.S_ISREG(st.st_mode) and known.get(name) == (st.st_size, st.st_mtime_ns):
                    continue  # the usual case of a rescan: a file that has a job, unchanged
                path = Path(name)
                if path in wanted:
                    still_there.add(path)
                elif path in candidates or skipped.get(path) == (st.st_size, st.st_mtime_ns):
                    continue
                found.append((path, st))
            return found, still_there

        began = time.monotonic()
        found, still_there = await asyncio.to_thread(look)
        for path in listed:
            if path not in still_there:
                self._refused.pop(path, None)
        for path, st in found:
            if path in self._candidates:
                continue
            if stat.S_ISDIR(st.st_mode):  # a multi-track session
                self._candidates[path] = Candidate(folder, session=True)
                continue
            if not stat.S_ISREG(st.st_mode):
                self._refuse(folder, path, inputs.refusal(path, inputs.kind_of(st.st_mode)).message)
                continue
            if path in self._refused:  # empty or unreadable before: look again
                self._candidates[path] = Candidate(folder)
                continue
            signature = (st.st_size, st.st_mtime_ns)
            if (
                self._skipped.get(path) == signature
                or self._known.get(os.fspath(path)) == signature
            ):
                continue
            rel = path.relative_to(folder.inbox).as_posix()
            if self.is_known(folder, rel, st.st_size, st.st_mtime_ns):
                self._known[os.fspath(path)] = signature
            else:
                self._candidates[path] = Candidate(folder)
        self.log.debug(
            ev.INBOX_SCANNED,
            folder=folder.name,
            directory=str(directory),
            entries=len(found),
            seconds=round(time.monotonic() - began, 3),
        )

    # -- settling -------------------------------------------------------------------

    async def _check_candidates(self) -> None:
        """Look at every candidate; queue those that stayed the same long enough."""
        if not self._candidates:
            return
        paths = list(self._candidates)
        signatures = await asyncio.to_thread(looks, paths, dict(self._candidates))
        now = time.monotonic()
        for path, signature in zip(paths, signatures, strict=True):
            candidate = self._candidates.get(path)
            if candidate is None:
                continue
            watch = self._watches.get(candidate.folder.key)
            if watch is None or watch.problem:
                continue  # paused: keep it for when the inbox is back
            if signature is None or isinstance(signature, str):
                del self._candidates[path]
                if signature is None:
                    self._refused.pop(path, None)
                else:
                    self._refuse(candidate.folder, path, inputs.refusal(path, signature).message)
                continue
            if signature != candidate.signature:
                candidate.signature, candidate.since = signature, now
                continue
            if now - candidate.since >= settle_window(candidate, path, self.settle_seconds):
                del self._candidates[path]
                self._ready.put_nowait((candidate.folder, path))

    def _settle_again(self, folder: Folder, path: Path) -> None:
        """Watch a handed-over path settle once more, from now: the loop may be resting
        for the inbox checks (REST_CHECK_SECONDS), so it is woken to watch it settle."""
        self._candidates.setdefault(path, Candidate(folder, session=is_directory(path)))
        self._activity.set()

    async def _take_ready(self) -> None:
        """Hand settled recordings to the pipeline, one at a time (fingerprinting reads them)."""
        while True:
            folder, path = await self._ready.get()
            watch = self._watches.get(folder.key)
            if watch is None:
                continue
            if watch.problem:
                self._settle_again(folder, path)
                continue
            try:
                verdict = await self.intake(folder, path)
            except Exception:
                self.log.exception(ev.INBOX_INTAKE_ERROR, folder=folder.name, path=str(path))
                verdict = "error"
            self.news.set()
            if verdict == "changed":
                self._settle_again(folder, path)
            elif verdict == "skipped":
                with contextlib.suppress(OSError):
                    st = os.lstat(path)
                    self._skipped[path] = (st.st_size, st.st_mtime_ns)
            elif verdict == "refused":
                self._refuse(folder, path, getattr(verdict, "reason", None) or "not taken")
            else:
                self._refused.pop(path, None)
