"""A folder's backlog: what its inbox already held the first time cvsyncd watched it.

An archive of 400 old episodes must not be paid for because someone pointed an inbox at
it. So the first time a folder is watched (no decision stored for it, and no job of it in
the store), every recording in it is measured — its duration probed on this machine,
nothing sent — and the folder's ``existing`` setting decides, once, what becomes of them:

- ``auto`` (the default): take them if they come to at most ``[budget] backlog_hours``,
  hold all of them otherwise;
- ``take``: take them; ``hold``: hold them all; ``skip``: never take them (only recordings
  that arrive later, or that change, are taken).

The decision and the list of recordings it covers (name, size, mtime) are stored
(``jobs/spending.py``), so a restart does not see a backlog again and skipped files stay
skipped. Held ones become jobs in ``held`` (the spend guard, ``spend.py``) that only
``cvsyncd release`` lets go. :func:`measure` also serves ``cvsyncd estimate``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog

from cvsyncd import events as ev
from cvsyncd.config import BudgetSettings, Folder
from cvsyncd.inbox import inputs, media
from cvsyncd.inbox import rules as inbox
from cvsyncd.jobs import Backlog
from cvsyncd.pipeline.runtime import Runtime, RuntimePart
from cvsyncd.pipeline.spend import hours_text, recording_hours


@dataclass(frozen=True)
class Recording:
    """One recording found in an inbox, measured without sending anything."""

    name: str  # its path inside the inbox (a multi-track session: its folder)
    size: int | None  # None for a session
    mtime_ns: int | None
    seconds: float | None  # None: its length cannot be read
    problem: str | None = None  # why it would not be taken (not media, empty …)
    tracks: int = 1

    def hours(self, budget: BudgetSettings) -> float:
        """What it counts as against the caps (nothing, if it would not be taken)."""
        return 0.0 if self.problem else recording_hours(self.seconds, budget)


def measure(folder: Folder, paths: Iterable[Path] | None = None) -> list[Recording]:
    """Every recording of ``folder``'s inbox (or only those of ``paths``), measured.

    Reads only the first bytes of each file (``media.probe_file``), opened as inputs are
    (``inputs.open_regular``); entries that are not regular files are left out.
    """
    if paths is None:
        found: Iterator[tuple[str, os.stat_result]] = inbox.walk(folder)
    else:
        found = _given(paths)
    out = []
    for name, st in found:
        path = Path(name)
        rel = path.relative_to(folder.inbox).as_posix() if path.is_absolute() else name
        if stat.S_ISDIR(st.st_mode):
            tracks = inbox.session_tracks(folder, path)
            lengths = [_probe(folder.inbox, track)[0] for track, _ in tracks]
            known = [s for s in lengths if s]
            out.append(
                Recording(
                    rel,
                    None,
                    None,
                    max(known) if known else None,
                    None if tracks else "a multi-track folder without tracks",
                    tracks=len(tracks),
                )
            )
        elif stat.S_ISREG(st.st_mode):
            seconds, problem = _probe(folder.inbox, path)
            out.append(Recording(rel, st.st_size, st.st_mtime_ns, seconds, problem))
    return sorted(out, key=lambda r: r.name)


def _given(paths: Iterable[Path]) -> Iterator[tuple[str, os.stat_result]]:
    for path in paths:
        with contextlib.suppress(OSError):
            yield os.fspath(path), os.lstat(path)


def _probe(root: Path, path: Path) -> tuple[float | None, str | None]:
    """(duration in seconds or None, why it is not media or None) of one file below
    ``root``, opened as the pipeline opens inputs (``inputs.open_regular``: no link
    followed, here or in a parent folder; no FIFO or device)."""
    try:
        with inputs.open_regular(root, path.relative_to(root).as_posix()) as (file, _):
            found = media.probe_file(file)
    except inputs.InputRefused as exc:
        return None, exc.message
    except OSError:  # an I/O error: its length is not known, and counts as such
        return None, None
    return found.duration, found.problem


def decide_backlog(
    folder: Folder,
    budget: BudgetSettings,
    recordings: list[Recording],
    now: float,
    device: int | None = None,
) -> Backlog:
    """What the folder's ``existing`` setting makes of ``recordings``, found at its first
    look (its inbox on ``device``): "take", "hold" or "skip" ("auto": take them up to
    ``backlog_hours``)."""
    hours = sum(r.hours(budget) for r in recordings)
    decision = folder.existing
    if decision == "auto":
        decision = "take" if hours <= budget.backlog_hours + 1e-9 else "hold"
    entries: dict[str, list[int] | None] = {
        r.name: None if r.size is None or r.mtime_ns is None else [r.size, r.mtime_ns]
        for r in recordings
    }
    return Backlog(decision, folder.existing, round(hours, 6), now, entries, device)


def moved_since(folder: Folder, known: Backlog) -> str | None:
    """Why an inbox weighed empty must be weighed again (None: it need not be).

    An empty inbox may be the bare folder a share is later mounted over. Weighed then, it
    would let the share's whole archive in as new recordings. So an inbox that was empty
    when weighed, and now holds something on another device, is weighed again, once.
    """
    if known.entries or known.device is None or known.decision == "none":
        return None
    try:
        device = os.stat(folder.inbox).st_dev
    except OSError:
        return None
    if device == known.device or inbox.looks_emptied(folder):
        return None
    return (
        f"the inbox {folder.inbox} was empty when first weighed and is on another device "
        "now (a share mounted after the daemon started?): what it holds now is its backlog"
    )


class Backlogs(RuntimePart):
    """Deciding, once per folder, what becomes of what its inbox already held."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.log = structlog.get_logger("cvsyncd.pipeline")
        self._deciding: dict[str, asyncio.Lock] = {}
        self._decided: dict[str, Backlog] = {}  # a decision never changes: read it once

    def decided(self, folder: Folder) -> Backlog | None:
        """The folder's backlog decision if it was made (from memory after the first read)."""
        known = self._decided.get(folder.key)
        if known is None:
            known = self.store.backlog(folder.key)
            if known is not None:
                self._decided[folder.key] = known
        return known

    def skips(self, folder: Folder, name: str, size: int, mtime_ns: int) -> bool:
        """Whether this file, as it is, belongs to a backlog its folder said to skip."""
        known = self.decided(folder)
        return known is not None and known.decision == "skip" and known.covers(name, size, mtime_ns)

    async def decide_all(self, folders: Iterable[Folder]) -> None:
        """Decide the backlog of every folder seen for the first time (at start, before
        the inboxes are scanned: what is there now is the backlog, what comes later is not)."""
        for folder in folders:
            await self.decide(folder)

    async def decide(self, folder: Folder) -> Backlog | None:
        """The folder's backlog decision, made now if it was never made (None: its inbox
        cannot be looked at now; nothing is decided from a missing or unmounted one)."""
        known = self.decided(folder)
        if known is not None and not _may_have_moved(folder, known):
            return known
        lock = self._deciding.setdefault(folder.key, asyncio.Lock())
        async with lock:
            known = self.decided(folder)
            again = None
            if known is not None:
                if not _may_have_moved(folder, known):
                    return known
                again = await asyncio.to_thread(moved_since, folder, known)
                if again is None:
                    return known
                self.log.warning(ev.INBOX_BACKLOG_AGAIN, folder=folder.name, reason=again)
            now = time.time()
            if again is None and self.store.has_jobs(folder.key):
                # watched before the spend guard existed: what is there is not a backlog
                decided = Backlog("none", folder.existing, 0.0, now, {})
                self.store.set_backlog(folder.key, decided)
                self._decided[folder.key] = decided
                return decided
            if await asyncio.to_thread(inbox.unavailable, folder):
                return None
            device = await asyncio.to_thread(_device, folder)
            recordings = await asyncio.to_thread(measure, folder)
            return self._record(folder, recordings, now, device)

    def _record(
        self, folder: Folder, recordings: list[Recording], now: float, device: int | None
    ) -> Backlog:
        decided = decide_backlog(folder, self.config.budget, recordings, now, device)
        decision, hours = decided.decision, decided.hours
        self.store.set_backlog(folder.key, decided)
        self._decided[folder.key] = decided
        held_or_skipped = bool(recordings) and decision != "take"
        (self.log.warning if held_or_skipped else self.log.info)(
            ev.INBOX_BACKLOG,
            folder=folder.name,
            decision=decision,
            existing=folder.existing,
            recordings=len(recordings),
            hours=round(hours, 3),
            words=f"{len(recordings)} recording(s), {hours_text(hours)}",
        )
        return decided


def _may_have_moved(folder: Folder, known: Backlog) -> bool:
    """Whether ``moved_since`` must look: an inbox weighed empty, on another device now.
    One ``stat`` at most, on the loop (as intake's own ``lstat``): most decisions have
    entries or no device, and most inboxes stay where they are."""
    if known.entries or known.device is None or known.decision == "none":
        return False
    return _device(folder) not in (known.device, None)


def _device(folder: Folder) -> int | None:
    try:
        return os.stat(folder.inbox).st_dev
    except OSError:
        return None
