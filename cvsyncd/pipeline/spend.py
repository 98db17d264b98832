"""The spend guard: nothing is uploaded that the user did not mean to pay for.

Cleanvoice bills per hour of audio. Right before a queued job would upload its first byte,
:meth:`SpendGuard.check` weighs it with the duration probed on this machine (a recording
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
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import structlog

from cvsyncd import events as ev
from cvsyncd.config import BudgetSettings, Config, Folder
from cvsyncd.jobs import Job, JobState, Store
from cvsyncd.jobs.spending import BACKLOG, CAP_DAY, CAP_FOLDER_MONTH, CAP_MONTH, CAPS, CREDIT
from cvsyncd.pipeline.runtime import Runtime, RuntimePart

S = JobState
# a hold that only a person ends waits "forever" (a time that still prints as a date)
NEVER = 253402300799.0  # 9999-12-31T23:59:59Z
CREDIT_RECHECK_SECONDS = 600.0

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
    if 0 < value < 0.1:
        return f"{value:.3g} h"
    return f"{value:.2f} h" if value < 1 else f"{value:.1f} h"


class SpendGuard(RuntimePart):
    """Weighs each recording against the caps, the backlog decision and the balance."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.balance: tuple[float, float] | None = None  # (hours left, when learnt)
        self.log = structlog.get_logger("cvsyncd.pipeline")

    # -- deciding ------------------------------------------------------------------------

    def check(self, job: Job, folder: Folder, now: float | None = None) -> Hold | None:
        """Return why ``job`` must not be uploaded now, or None if it may go.

        ``now`` is for the tests of the calendar: the guard uses the clock otherwise.
        """
        now = time.time() if now is None else now
        released = set(job.facts.get("released", ()))
        needs = recording_hours(job.facts.get("duration"), self.config.budget)
        if job.facts.get("backlog") == "hold" and BACKLOG not in released:
            return self.backlog_hold(job, needs)
        for kind, cap, (start, end), folder_key in self.caps(folder, now):
            if kind in released:
                continue
            used = self.store.spent(start, end, folder_key or None).hours
            if used + needs <= cap + 1e-9:
                continue
            return self.cap_hold(kind, cap, used, needs, end, folder)
        if CREDIT not in released and self.balance is not None:
            left, _ = self.balance
            if left < needs:
                return Hold(
                    CREDIT,
                    f"the Cleanvoice account has {hours_text(left)} of credit left, and this "
                    f"recording needs {hours_text(needs)}; add credit in the Cleanvoice "
                    "dashboard (it resumes by itself) or release it: cvsyncd release "
                    f"-c {self.config.path} {job.id}",
                    needs,
                    resume_at=now + CREDIT_RECHECK_SECONDS,
                )
        return None

    def caps(self, folder: Folder, now: float) -> list[tuple[str, float, tuple[float, float], str]]:
        """(kind, cap in hours, the period's bounds, folder key or "") of each cap that
        applies to ``folder``'s recordings, the folder's own first."""
        budget = self.config.budget
        found = []
        if folder.hours_per_month is not None:
            found.append((CAP_FOLDER_MONTH, folder.hours_per_month, month_bounds(now), folder.key))
        if budget.hours_per_month is not None:
            found.append((CAP_MONTH, budget.hours_per_month, month_bounds(now), ""))
        if budget.hours_per_day is not None:
            found.append((CAP_DAY, budget.hours_per_day, day_bounds(now), ""))
        return found

    def backlog_hold(self, job: Job, needs: float) -> Hold:
        backlog = self.store.backlog(job.folder)
        if backlog is not None and backlog.mode == "hold":
            why = 'the folder says existing = "hold"'
        else:
            total = hours_text(backlog.hours) if backlog else "more"
            why = (
                f"they come to {total} in all, more than backlog_hours = "
                f"{self.config.budget.backlog_hours:g} h in [budget]"
            )
        return Hold(
            BACKLOG,
            "it was already in the inbox when cvsyncd first watched the folder, and "
            f"{why}; nothing of it is uploaded until you say so: cvsyncd release "
            f"-c {self.config.path} {job.id} (or --folder, or --all)",
            needs,
        )

    def cap_hold(
        self, kind: str, cap: float, used: float, needs: float, end: float, folder: Folder
    ) -> Hold:
        period = "daily" if kind == CAP_DAY else "monthly"
        whose = f" of folder {folder.name}" if kind == CAP_FOLDER_MONTH else ""
        resume_on = local_date(end)
        if needs > cap:
            ends = (
                f"this recording alone ({hours_text(needs)}) is more than the cap; raise "
                f"{CAP_KEYS[kind]} or release it: cvsyncd release -c {self.config.path} JOB"
            )
        else:
            ends = (
                f"this recording, {hours_text(needs)}, waits until {resume_on} or a higher "
                f"cap ({CAP_KEYS[kind]})"
            )
        return Hold(
            kind,
            f"{period} cap{whose} of {cap:g} h reached: {hours_text(used)} used; {ends}",
            needs,
            resume_at=end,
            cap_hours=cap,
            used_hours=round(used, 4),
            resume_on=resume_on,
        )

    # -- acting ------------------------------------------------------------------------

    def spend_facts(self, job: Job, now: float | None = None) -> dict[str, Any]:
        """The job's facts as it passes the guard: what it counts against the caps."""
        hours = recording_hours(job.facts.get("duration"), self.config.budget)
        at = time.time() if now is None else now
        facts = {k: v for k, v in job.facts.items() if k != "hold"}
        facts["spend"] = {"at": at, "hours": round(hours, 6)}
        return facts

    def hold(self, job: Job, hold: Hold) -> Job:
        """Move a queued job to held (or a held one to its new hold), with the reason."""
        facts = {**job.facts, "hold": hold.as_facts()}
        due = NEVER if hold.resume_at is None else hold.resume_at
        fields: dict[str, Any] = {
            "facts": facts,
            "error": hold.reason,
            "attempts": 0,
            "next_attempt_at": due,
            "progress": None,
        }
        if job.state is S.HELD:
            return self.store.update(job.id, S.HELD, None, **fields)
        self.log.warning(
            ev.JOB_HELD,
            job=job.id,
            path=job.name,
            kind=hold.kind,
            hours=round(hold.needs_hours, 3),
            reason=hold.reason,
        )
        return self.store.transition(job.id, job.state, S.HELD, hold.reason, **fields)

    def resume(self, job: Job, why: str) -> Job:
        """Send a held job back to the queue (its hold ended by itself)."""
        facts = {k: v for k, v in job.facts.items() if k != "hold"}
        self.log.info(ev.JOB_HOLD_ENDED, job=job.id, path=job.name, why=why)
        return self.store.transition(
            job.id, S.HELD, S.QUEUED, why, facts=facts, error=None, next_attempt_at=0
        )

    async def recheck(self, job: Job, folder: Folder) -> None:
        """The step of a held job that fell due: a period turned, a cap changed, or
        credit may be back. Queue it again if nothing holds it now."""
        hold = self.check(job, folder)
        if hold is None:
            self.resume(job, "the budget allows it now")
        elif hold.as_facts() != job.facts.get("hold"):
            self.hold(job, hold)  # other figures, or another cap
        else:
            self.store.update(
                job.id,
                S.HELD,
                None,
                next_attempt_at=NEVER if hold.resume_at is None else hold.resume_at,
            )


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
