"""``cvsyncd estimate``: what would be taken, and what it would cost, before anything is.

Each recording is measured on this machine (``backlog.measure``: the first bytes of each
file, nothing sent); recordings that already have a job are left out. Each one is given
what would become of it: taken, held as part of a held backlog, or skipped (a skipped
backlog, or a file that is not media). The totals are set against the caps as they stand
(hours used this day and month, from the store) and, when the caller could reach it,
against the account's balance. Nothing is uploaded, no job is created, nothing is stored.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cvsyncd.config import Config, Folder
from cvsyncd.inbox import rules
from cvsyncd.jobs import Backlog, Store
from cvsyncd.jobs.spending import CAP_DAY
from cvsyncd.pipeline.backlog import Recording, decide_backlog, measure
from cvsyncd.pipeline.spend import caps_for, local_date, recording_hours

OUTSIDE = "(not in an inbox)"


def estimate(
    config: Config, store: Store | None, paths: Sequence[Path] = (), now: float | None = None
) -> dict[str, Any]:
    """What ``cvsyncd estimate`` reports, as data (see the module's docstring)."""
    now = time.time() if now is None else now
    budget = config.budget
    groups = _groups(config, paths)
    folders_out = []
    going: list[tuple[Folder, float]] = []  # what would be uploaded, in order
    for folder, given in groups:
        in_inbox = folder in config.folders
        recordings = measure(folder, given)
        decided = _backlog(config, store, folder, given, recordings) if in_inbox else None
        items = []
        known = 0
        for rec in recordings:
            if in_inbox and store is not None and _has_job(store, folder, rec):
                known += 1
                continue
            hours = recording_hours(rec.seconds, budget)
            fate = _fate(decided, rec)
            items.append(
                {
                    "name": rec.name,
                    "seconds": None if rec.seconds is None else round(rec.seconds, 3),
                    "hours": round(hours, 6) if fate != "not media" else 0.0,
                    "tracks": rec.tracks,
                    "would": fate,
                    "problem": rec.problem,
                }
            )
            if fate == "take":
                going.append((folder, hours))
        taken = [i for i in items if i["would"] == "take"]
        folders_out.append(
            {
                "folder": folder.name if in_inbox else OUTSIDE,
                "inbox": str(folder.inbox),
                "backlog": None if decided is None else decided.decision,
                "recordings": items,
                "already_jobs": known,
                "take": {"recordings": len(taken), "hours": round(_sum(taken), 6)},
                "hold": _count(items, "hold (backlog)"),
                "skip": _count(items, "skip (backlog)"),
            }
        )
    caps = _caps(config, store, now)
    fits = _fits(config, store, going, now)
    total = sum(h for _, h in going)
    return {
        "config": str(config.path),
        "folders": folders_out,
        "total": {"recordings": len(going), "hours": round(total, 6)},
        "caps": caps,
        "caps_allow": {"recordings": fits, "of": len(going)},
        "unknown_duration_hours": budget.unknown_duration_hours,
    }


def _groups(config: Config, paths: Sequence[Path]) -> list[tuple[Folder, list[Path] | None]]:
    """(folder, the recordings given in it, or None for its whole inbox) to measure. A
    path outside every inbox is measured with the first folder's rules, as ``process``
    would take it."""
    if not paths:
        return [(folder, None) for folder in config.folders]
    whole: list[Folder] = []
    picked: dict[Folder, list[Path]] = {}
    loose: list[tuple[Folder, list[Path] | None]] = []
    for given in paths:
        path = Path(given).absolute()
        folder = next(
            (f for f in config.folders if path == f.inbox or f.inbox in path.parents), None
        )
        if folder is not None and path == folder.inbox:
            whole.append(folder)
        elif folder is not None:
            picked.setdefault(folder, []).extend(_expand(folder, path))
        elif path.is_dir():
            loose.append((dataclasses.replace(config.folders[0], inbox=path), None))
        else:
            loose.append((dataclasses.replace(config.folders[0], inbox=path.parent), [path]))
    out: list[tuple[Folder, list[Path] | None]] = [(f, None) for f in dict.fromkeys(whole)]
    out += [(f, found) for f, found in picked.items() if f not in whole]
    return out + loose


def _expand(folder: Folder, path: Path) -> list[Path]:
    """The recordings a path inside an inbox stands for: a file, a multi-track session, or
    what the inbox walk finds below a folder."""
    if not path.is_dir() or (folder.multitrack and path.parent == folder.inbox):
        return [path]
    return [Path(name) for name, _ in rules.walk(folder, path)]


def _backlog(
    config: Config,
    store: Store | None,
    folder: Folder,
    given: list[Path] | None,
    measured: list[Recording],
) -> Backlog | None:
    """The folder's backlog decision: stored, or the one its first look would make now."""
    if store is not None:
        decided = store.backlog(folder.key)
        if decided is not None:
            return decided
        if store.has_jobs(folder.key):
            return None
    whole = measure(folder) if given is not None else measured
    return decide_backlog(folder, config.budget, whole, time.time())


def _fate(decided: Backlog | None, rec: Recording) -> str:
    if rec.problem:
        return "not media"
    if decided is not None and decided.covers(rec.name, rec.size, rec.mtime_ns):
        if decided.decision == "hold":
            return "hold (backlog)"
        if decided.decision == "skip":
            return "skip (backlog)"
    return "take"


def _has_job(store: Store, folder: Folder, rec: Recording) -> bool:
    if rec.size is not None and rec.mtime_ns is not None:
        return store.find_by_input(folder.key, rec.name, rec.size, rec.mtime_ns) is not None
    return store.find_pending_for_name(folder.key, rec.name) is not None


def _sum(items: list[dict[str, Any]]) -> float:
    return float(sum(i["hours"] for i in items))


def _count(items: list[dict[str, Any]], fate: str) -> dict[str, Any]:
    chosen = [i for i in items if i["would"] == fate]
    return {"recordings": len(chosen), "hours": round(_sum(chosen), 6)}


def _caps(config: Config, store: Store | None, now: float) -> list[dict[str, Any]]:
    """Each cap (as the spend guard sees it, ``spend.caps_for``): its hours, the hours used
    in its period so far, what is left, and when the period turns."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for folder in config.folders:
        for kind, cap, (start, end), key in caps_for(config, folder, now):
            if (kind, key) in out:
                continue
            used = store.spent(start, end, key or None).hours if store else 0.0
            out[(kind, key)] = {
                "cap": "hours_per_day" if kind == CAP_DAY else "hours_per_month",
                "folder": folder.name if key else None,
                "hours": cap,
                "used": round(used, 6),
                "left": round(max(0.0, cap - used), 6),
                "until": local_date(end),
            }
    return list(out.values())


def _fits(
    config: Config, store: Store | None, going: list[tuple[Folder, float]], now: float
) -> int:
    """How many of the recordings that would be taken, in order, the caps let go now."""
    left: dict[tuple[str, str], float] = {}
    fits = 0
    for folder, hours in going:
        caps = caps_for(config, folder, now)
        for kind, cap, bounds, key in caps:
            if (kind, key) not in left:
                left[(kind, key)] = cap - (store.spent(*bounds, key or None).hours if store else 0)
        if any(left[(kind, key)] + 1e-9 < hours for kind, _, _, key in caps):
            break
        fits += 1
        for kind, _, _, key in caps:
            left[(kind, key)] -= hours
    return fits
