"""The usage ledger: how many hours of audio each folder (show), day or month used.

Every done job keeps the duration of its audio, probed on this machine before upload
(``facts.duration``), and what it cost where a balance change told (``facts.cost``: the
balance fell between two readings over which this edit alone was created; the API itself
says nothing about cost). ``cvsyncd
usage`` sums them by folder, local day or local month, for one month or for all of them —
for a podcast network's invoices.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from cvsyncd.config import Config
from cvsyncd.jobs import Store
from cvsyncd.pipeline.spend import month_bounds

GROUPINGS = ("folder", "day", "month")


def month_range(month: str | None, now: float | None = None) -> tuple[float, float, str]:
    """(start, end, label) of the local month ``YYYY-MM`` (None: this month). Raise
    ValueError for anything else."""
    if month is None:
        start, end = month_bounds(time.time() if now is None else now)
    else:
        first = dt.datetime.strptime(month, "%Y-%m")
        start, end = month_bounds(first.timestamp() + 12 * 3600)
    return start, end, dt.datetime.fromtimestamp(start).strftime("%Y-%m")


def usage_report(
    config: Config,
    store: Store | None,
    by: str = "folder",
    month: str | None = None,
    every_month: bool = False,
) -> dict[str, Any]:
    """Hours and recordings (and cost where known) of the done jobs of one month (or of
    every month), grouped ``by`` folder, day or month."""
    if every_month:
        start, end, label = 0.0, float(2**40), "all"
    else:
        start, end, label = month_range(month)
    names = {f.key: f.name for f in config.folders}
    rows: dict[str, dict[str, Any]] = {}
    total = _row()
    for entry in store.usage(start, end) if store is not None else ():
        local = dt.datetime.fromtimestamp(entry.finished_at)
        key = {
            "folder": names.get(entry.folder, entry.folder),
            "day": local.strftime("%Y-%m-%d"),
            "month": local.strftime("%Y-%m"),
        }[by]
        for row in (rows.setdefault(key, _row(by, key)), total):
            row["recordings"] += 1
            if entry.seconds is None:
                row["unknown_length"] += 1
            else:
                row["hours"] += entry.seconds / 3600
            if entry.credits is not None:
                row["credits"] = (row["credits"] or 0.0) + entry.credits
    for row in (*rows.values(), total):
        row["hours"] = round(row["hours"], 4)
    return {
        "month": label,
        "by": by,
        "rows": [rows[k] for k in sorted(rows)],
        "total": total,
    }


def _row(by: str | None = None, key: str = "") -> dict[str, Any]:
    """A row of the ledger, empty: recordings, hours, how many of unknown length, credits."""
    first: dict[str, Any] = {by: key} if by else {}
    return {**first, "recordings": 0, "hours": 0.0, "unknown_length": 0, "credits": None}
