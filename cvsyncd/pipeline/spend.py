"""The spend guard's terms: holds, the local calendar, hours, and what ``status`` says.

Cleanvoice bills per hour of audio. Right before a queued job would upload its first byte,
``guard.SpendGuard.check`` weighs it with the duration probed on this machine (a recording
whose length cannot be read counts as ``unknown_duration_hours``) and holds it —
``queued → held``, nothing uploaded — when:

- it belongs to a folder's **backlog** (what the inbox held when it was first watched,
  ``backlog.py``) that was held; only ``cvsyncd release`` lets it go;
- it would push a **cap** over: ``[budget] hours_per_day`` or ``hours_per_month`` (all
  folders, local calendar) or a folder's ``hours_per_month``. It resumes by itself when the
  period turns, or at once when a reload raises the cap (``Runtime.reconfigure``);
- the account's **balance** is known, in time, and is below what the recording needs.

What counts against a cap: the hours of every job that passed the guard in that period and
is on its way, done, or failed after it was submitted (``jobs/spending.py``). A released
job is not held again by the kind of hold it was released from.

This module imports nothing of the running pipeline: ``status`` and ``usage`` use it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from cvsyncd.config import BudgetSettings, Config, Folder
from cvsyncd.jobs import JobState, Store
from cvsyncd.jobs.spending import BACKLOG, CAP_DAY, CAP_FOLDER_MONTH, CAP_MONTH, CAPS

S = JobState
# a hold that only a person ends waits "forever" (a time that still prints as a date)
NEVER = 253402300799.0  # 9999-12-31T23:59:59Z
CREDIT_RECHECK_SECONDS = 120.0

# the [budget] (or folder) key that sets each cap, for the words
CAP_KEYS = {
    CAP_DAY: "hours_per_day in [budget]",
    CAP_MONTH: "hours_per_month in [budget]",
    CAP_FOLDER_MONTH: "hours_per_month of the folder",
}


@dataclass(frozen=True)
class Hold:
    """Why a job waits before upload, with the figures, and until when (None: a person)."""

    kind: str  # BACKLOG, CAP_DAY, CAP_MONTH, CAP_FOLDER_MONTH or CREDIT
    reason: str  # in plain words, with what ends it
    needs_hours: float
    resume_at: float | None = None
    cap_hours: float | None = None
    used_hours: float | None = None
    resume_on: str | None = None  # the local date the period turns, for the words

    def as_facts(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


# -- the calendar ------------------------------------------------------------------------


def day_bounds(now: float) -> tuple[float, float]:
    """The local day around ``now``: (its first second, the next day's first second)."""
    today = dt.datetime.fromtimestamp(now).date()
    return _local(today), _local(today + dt.timedelta(days=1))


def month_bounds(now: float) -> tuple[float, float]:
    """The local calendar month around ``now``: (its first second, the next month's)."""
    day = dt.datetime.fromtimestamp(now).date()
    first = day.replace(day=1)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return _local(first), _local(following)


def _local(day: dt.date) -> float:
    """The timestamp of local midnight at the start of ``day``."""
    return time.mktime((day.year, day.month, day.day, 0, 0, 0, 0, 0, -1))


def local_date(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).date().isoformat()


# -- weighing a recording ----------------------------------------------------------------


def recording_hours(seconds: float | None, budget: BudgetSettings) -> float:
    """What a recording of ``seconds`` counts as against the caps (unknown: the default)."""
    if seconds is None or seconds <= 0:
        return budget.unknown_duration_hours
    return seconds / 3600.0


def hours_text(value: float) -> str:
    """Hours for a person: ``1.6 h``; ``0.42 h`` below one; ``0.0417 h`` below a tenth."""
    if value == 0:
        return "0 h"
    if 0 < value < 0.1:
        return f"{value:.3g} h"
    return f"{value:.2f} h" if value < 1 else f"{value:.1f} h"


def caps_for(
    config: Config, folder: Folder, now: float
) -> list[tuple[str, float, tuple[float, float], str]]:
    """(kind, cap in hours, the period's bounds, folder key or "") of each cap that applies
    to ``folder``'s recordings at ``now``, the folder's own first."""
    budget = config.budget
    found = []
    if folder.hours_per_month is not None:
        found.append((CAP_FOLDER_MONTH, folder.hours_per_month, month_bounds(now), folder.key))
    if budget.hours_per_month is not None:
        found.append((CAP_MONTH, budget.hours_per_month, month_bounds(now), ""))
    if budget.hours_per_day is not None:
        found.append((CAP_DAY, budget.hours_per_day, day_bounds(now), ""))
    return found


def release_facts(facts: Mapping[str, Any]) -> dict[str, Any]:
    """A held job's facts once a person released it: the kind of hold it was released
    from is remembered, so that the same cap (or backlog) does not hold it again."""
    kind = facts.get("hold", {}).get("kind")
    released = list(facts.get("released", ()))
    if kind and kind not in released:
        released.append(kind)
    out = {k: v for k, v in facts.items() if k != "hold"}
    out["released"] = released
    return out


def held_summary(config: Config, store: Store, now: float | None = None) -> list[dict[str, Any]]:
    """The held jobs grouped by why, with the figures as they are now, for ``status``:
    e.g. "monthly cap of 40 h reached: 39.2 h used; 2 recordings, 1.6 h, wait until
    2026-12-01 or a higher cap"."""
    now = time.time() if now is None else now
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _, folder_key, hold in store.held_jobs():
        kind = str(hold.get("kind", ""))
        scope = folder_key if kind in (BACKLOG, CAP_FOLDER_MONTH) else ""
        groups.setdefault((kind, scope), []).append(hold)
    out = []
    for (kind, scope), holds in groups.items():
        count = len(holds)
        hours = sum(float(h.get("needs_hours", 0.0)) for h in holds)
        folder = next((f for f in config.folders if f.key == scope), None)
        name = folder.name if folder else scope
        waiting = f"{count} recording{'' if count == 1 else 's'}, {hours_text(hours)}"
        if kind == BACKLOG:
            words = (
                f"backlog of folder {name}: {waiting}, held until you release them "
                f"(cvsyncd release -c {config.path} --folder {name})"
            )
        elif kind in CAPS:
            if kind == CAP_DAY:
                cap, (start, end) = config.budget.hours_per_day, day_bounds(now)
            elif kind == CAP_MONTH:
                cap, (start, end) = config.budget.hours_per_month, month_bounds(now)
            else:
                cap, (start, end) = (folder.hours_per_month if folder else None), month_bounds(now)
            used = store.spent(start, end, scope or None).hours
            period = "daily" if kind == CAP_DAY else "monthly"
            whose = f" of folder {name}" if kind == CAP_FOLDER_MONTH else ""
            shown_cap = "no" if cap is None else f"{cap:g} h"
            words = (
                f"{period} cap{whose} of {shown_cap} reached: {hours_text(used)} used; "
                f"{waiting}, wait until {local_date(end)} or a higher cap"
            )
        else:
            words = f"{waiting}: {holds[0].get('reason', kind)}"
        out.append({"kind": kind, "recordings": count, "hours": round(hours, 4), "words": words})
    return out
