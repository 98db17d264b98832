"""The spend guard at work: weighing a queued job before its upload, holding it, and
weighing a held one again when it falls due (the terms are in ``spend.py``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import structlog

from cvsyncd import events as ev
from cvsyncd.cleanvoice.answers import account_balance, balance_unit
from cvsyncd.config import Folder
from cvsyncd.errors import CvsyncdError
from cvsyncd.jobs import Job, JobState
from cvsyncd.jobs.spending import BACKLOG, CAP_DAY, CAP_FOLDER_MONTH, CREDIT
from cvsyncd.pipeline.runtime import Runtime, RuntimePart
from cvsyncd.pipeline.spend import (
    CAP_KEYS,
    CREDIT_RECHECK_SECONDS,
    NEVER,
    Hold,
    caps_for,
    hours_text,
    local_date,
    recording_hours,
)

S = JobState
BALANCE_SECONDS = 300.0  # how old a balance may be before it is asked for again
# a balance in these units can be set against hours of audio; "credits" cannot
HOURS_PER_UNIT = {"hours": 1.0, "hour": 1.0, "minutes": 1 / 60, "minute": 1 / 60}


def balance_hours(body: Mapping[str, Any]) -> float | None:
    """The balance of an account answer in hours of audio, or None when it gives none or
    gives it in a unit that is not time (Cleanvoice's own credits)."""
    balance = account_balance(body)
    per_unit = HOURS_PER_UNIT.get(balance_unit(body).strip().lower())
    return None if balance is None or per_unit is None else balance * per_unit


class SpendGuard(RuntimePart):
    """Weighs each recording against the caps, the backlog decision and the balance."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.balance: tuple[float, float] | None = None  # (hours left, when learnt)
        self.log = structlog.get_logger("cvsyncd.pipeline")
        self._balance_asked_at = 0.0
        self._balance_task: asyncio.Task[None] | None = None
        self._reading: tuple[float, str, float] | None = None  # (balance, unit, when)

    # -- the balance ---------------------------------------------------------------------

    def refresh_balance(self) -> None:
        """Ask for the account's balance in the background when the last answer is older
        than BALANCE_SECONDS. Nothing waits for it: a step uses what is known."""
        if self._balance_task is not None and not self._balance_task.done():
            return
        if time.time() - self._balance_asked_at < BALANCE_SECONDS:
            return
        self._balance_asked_at = time.time()
        self._balance_task = asyncio.get_running_loop().create_task(self._learn_balance())

    async def _learn_balance(self) -> None:
        try:
            body = await self.client.account()
        except (CvsyncdError, OSError):
            return  # not known now: the create-edit will tell (402 pauses the account)
        now = time.time()
        balance = account_balance(body)
        if balance is not None:
            self.note_balance(balance, balance_unit(body), now)
        learnt = balance_hours(body)
        self.balance = None if learnt is None else (learnt, now)

    def note_balance(self, balance: float, unit: str, now: float) -> None:
        """Keep a balance reading; when it fell since the last one and exactly one edit was
        created in between, that fall is what the edit cost (the API says nothing about
        cost itself): kept with the job for the usage ledger."""
        last, self._reading = self._reading, (balance, unit, now)
        if last is None or last[1] != unit or balance >= last[0]:
            return
        created = self.store.submitted_between(last[2], now)
        if len(created) != 1:
            return  # none, or several sharing the fall: nothing can be told
        job = self.store.get(created[0])
        if job is None or "cost" in job.facts:
            return
        cost = {"credits": round(last[0] - balance, 6), "unit": unit, "told_by": "balance"}
        self.store.update(job.id, job.state, None, facts={**job.facts, "cost": cost})

    def credit_left(self) -> float | None:
        """Hours of credit left as far as is known: the last balance read, less what was
        let through since (it may not have been charged yet). None: not known in hours."""
        if self.balance is None:
            return None
        hours, learnt_at = self.balance
        return hours - self.store.spent(learnt_at, NEVER).hours

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
        for kind, cap, (start, end), folder_key in caps_for(self.config, folder, now):
            if kind in released:
                continue
            used = self.store.spent(start, end, folder_key or None).hours
            if used + needs <= cap + 1e-9:
                continue
            return self.cap_hold(kind, cap, used, needs, end, folder)
        left = self.credit_left() if CREDIT not in released else None
        if left is not None and left + 1e-9 < needs:
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
        held = self.store.transition(job.id, job.state, S.HELD, hold.reason, **fields)
        self.runtime.notices.job_held(held, self.runtime.folder_of(held), hold.reason)
        return held

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
        if job.facts.get("hold", {}).get("kind") == CREDIT:
            self.refresh_balance()
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
