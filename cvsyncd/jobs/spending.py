"""What the spend guard asks the store: hours spent in a period, the held jobs, each
folder's backlog decision, and the usage ledger of done jobs.

A job *spends* when it passes the guard on its way to being uploaded: the guard stores
``facts.spend = {"at": <time>, "hours": <audio hours>}`` with the step that makes it
``uploading``. It counts against the caps while it is on its way or done; a job that went
back to the queue (an interrupted upload), was held, or failed before it was submitted did
not cost anything and does not count (``SPENT_SQL``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from cvsyncd.jobs.queries import in_marks
from cvsyncd.jobs.requests import RequestBudget
from cvsyncd.jobs.states import JobState

S = JobState
# the kinds of hold, as stored in ``facts.hold.kind``
BACKLOG = "backlog"
CAP_DAY = "cap_day"
CAP_MONTH = "cap_month"
CAP_FOLDER_MONTH = "cap_folder_month"
CREDIT = "credit"
CAPS = (CAP_FOLDER_MONTH, CAP_MONTH, CAP_DAY)
META_BACKLOG = "backlog:"  # + a folder key: what was decided about its first inbox content

# a job that passed the guard and still counts: on its way, done, or failed only after it
# was submitted (Cleanvoice may have billed it); ambiguous ones count (they may be billed)
SPENT_SQL = (
    "{at} >= ? AND {at} < ?"
    " AND (state NOT IN ('queued', 'held', 'failed', 'duplicate')"
    " OR (state = 'failed' AND submitted_at IS NOT NULL))"
)


@dataclass(frozen=True)
class Spent:
    """Audio hours counted in a period, and by how many recordings."""

    hours: float
    recordings: int


@dataclass(frozen=True)
class Backlog:
    """What was decided about the recordings a folder held when it was first watched.

    ``decision`` is "take", "hold" or "skip" (or "none": the folder had jobs before the
    spend guard existed, so it has no backlog); ``entries`` maps each recording's name in
    the inbox to its [size, mtime_ns] then (a multi-track session: null).
    """

    decision: str
    mode: str  # the folder's `existing` setting that decided it
    hours: float
    decided_at: float
    entries: dict[str, list[int] | None]
    # the device the inbox was on when it was weighed (None: not known): an inbox weighed
    # empty that is later on another device (a share mounted late) is weighed again
    device: int | None = None

    def covers(self, name: str, size: int | None, mtime_ns: int | None) -> bool:
        """Whether the recording ``name`` (as it is now) was part of the backlog."""
        if name not in self.entries:
            return False
        was = self.entries[name]
        return was is None or size is None or was == [size, mtime_ns]


@dataclass(frozen=True)
class UsageRow:
    """One done job in the usage ledger."""

    job_id: int
    folder: str
    name: str
    finished_at: float
    seconds: float | None  # the audio's duration, as probed before upload
    credits: float | None  # what Cleanvoice charged, where a balance change told


class SpendRecords(RequestBudget):
    """The spend guard's questions and records."""

    def spent(self, since: float, until: float, folder: str | None = None) -> Spent:
        """Hours spent by jobs that passed the guard between ``since`` and ``until``
        (of one folder, by its key, or of all)."""
        hours = self._json_real("facts", "spend", "hours")
        at = self._json_real("facts", "spend", "at")
        sql = f"SELECT COALESCE(SUM({hours}), 0), COUNT(*) FROM jobs WHERE "
        sql += SPENT_SQL.format(at=at)
        args: list[Any] = [since, until]
        if folder is not None:  # a folder's cap: the folder at this site
            mine, more = self._mine()
            sql += f" AND folder = ?{mine}"
            args += [folder, *more]
        spent, count = self._conn.execute(sql, args).fetchone()
        return Spent(float(spent), int(count))

    def held_jobs(self, folders: Iterable[str] = ()) -> list[tuple[int, str, dict[str, Any]]]:
        """(id, folder key, hold) of every held job, oldest first (of ``folders`` if given)."""
        wanted = list(folders)
        mine, more = self._mine()
        sql = f"SELECT id, folder, {self._json('facts', 'hold')} FROM jobs WHERE state = ?{mine}"
        args: list[Any] = [S.HELD.value, *more]
        if wanted:
            sql += f" AND folder IN ({in_marks(wanted)})"
            args += wanted
        rows = self._conn.execute(sql + " ORDER BY id", args).fetchall()
        return [(int(r[0]), str(r[1]), json.loads(r[2]) if r[2] else {}) for r in rows]

    def wake_held(self, kinds: Iterable[str]) -> int:
        """Make the held jobs whose hold is of one of ``kinds`` due now (a cap changed):
        the scheduler looks at them again at once. Return how many."""
        wanted = list(kinds)
        kind = self._json("facts", "hold", "kind")
        with self._write() as conn:
            return int(
                conn.execute(
                    "UPDATE jobs SET next_attempt_at = 0 WHERE state = ?"
                    f" AND {kind} IN ({in_marks(wanted)})",
                    (S.HELD.value, *wanted),
                ).rowcount
            )

    def submitted_between(self, since: float, until: float) -> list[int]:
        """The jobs whose edit was created between ``since`` and ``until``."""
        rows = self._conn.execute(
            "SELECT id FROM jobs WHERE submitted_at >= ? AND submitted_at < ? ORDER BY id",
            (since, until),
        )
        return [int(r[0]) for r in rows]

    # -- backlogs ------------------------------------------------------------------------

    def backlog(self, folder: str) -> Backlog | None:
        """What was decided about a folder's first inbox content (None: not yet)."""
        text = self.get_meta(self._site_key(META_BACKLOG + folder))
        if text is None:
            return None
        data = json.loads(text)
        return Backlog(
            data["decision"],
            data.get("mode", ""),
            float(data.get("hours", 0.0)),
            float(data.get("decided_at", 0.0)),
            dict(data.get("entries", {})),
            data.get("device"),
        )

    def set_backlog(self, folder: str, backlog: Backlog | None) -> None:
        """Record (None: forget) the backlog decision of a folder."""
        value = None
        if backlog is not None:
            value = json.dumps(
                {
                    "decision": backlog.decision,
                    "mode": backlog.mode,
                    "hours": backlog.hours,
                    "decided_at": backlog.decided_at,
                    "entries": backlog.entries,
                    "device": backlog.device,
                }
            )
        self.set_meta(self._site_key(META_BACKLOG + folder), value)

    def has_jobs(self, folder: str) -> bool:
        """Whether any job of this folder (by its key) is in the store."""
        mine, more = self._mine()
        row = self._conn.execute(
            f"SELECT 1 FROM jobs WHERE folder = ?{mine} LIMIT 1", (folder, *more)
        )
        return row.fetchone() is not None

    # -- the usage ledger ----------------------------------------------------------------

    def usage(self, since: float, until: float) -> Iterator[UsageRow]:
        """The done jobs that finished between ``since`` and ``until``, oldest first."""
        rows = self._conn.execute(
            f"SELECT id, folder, name, finished_at, {self._json_real('facts', 'duration')},"
            f" {self._json_real('facts', 'cost', 'credits')} FROM jobs"
            " WHERE state = ? AND finished_at >= ? AND finished_at < ? ORDER BY finished_at, id",
            (S.DONE.value, since, until),
        )
        for job_id, folder, name, finished, seconds, credits in rows:
            yield UsageRow(
                int(job_id),
                str(folder),
                str(name),
                float(finished),
                None if seconds is None else float(seconds),
                None if credits is None else float(credits),
            )
