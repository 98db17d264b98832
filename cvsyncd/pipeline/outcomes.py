"""What a failed step means for its job — decided here, in one place.

- transient (network, timeouts, 429/5xx, a full disk): the job goes back to the last safe
  state and waits, with exponential backoff and jitter, honouring ``Retry-After``;
- account (bad key, no credits): nothing fails; all new uploads and submissions pause
  until an account check succeeds (``account.py``);
- permanent (the API refused this file, the edit failed, the input is unreadable): the job
  fails, its input goes to the folder's ``failed_dir`` with ``<name>.error.txt``;
- ambiguous (a create-edit may or may not have been billed): the job waits for the user
  in ``needs_attention``, unless they chose automatic resubmission.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import time
from typing import Any

import structlog

from cvsyncd import events as ev
from cvsyncd.cleanvoice.answers import (
    MAX_MESSAGE,
    plain,
)
from cvsyncd.config import Config, Folder
from cvsyncd.errors import (
    AccountApiError,
    AmbiguousApiError,
    ApiError,
    CvsyncdError,
    EditFailed,
    JobError,
    PermanentApiError,
    StoreError,
    TransientApiError,
)
from cvsyncd.inbox import rules as inbox
from cvsyncd.jobs import TERMINAL, TRANSITIONS, Job, JobState
from cvsyncd.pipeline import schedule
from cvsyncd.pipeline.account import account_trouble
from cvsyncd.pipeline.disposal import current_input_path, set_aside_failed_input
from cvsyncd.pipeline.runtime import Runtime, RuntimePart
from cvsyncd.pipeline.submit import record_edit
from cvsyncd.retry import backoff_delay

S = JobState
# where a job returns when a step of it must be redone later
SAFE_STATE = {S.UPLOADING: S.QUEUED, S.SUBMITTING: S.UPLOADED}
RETRYABLE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.ENOMEM})
INPUT_STATES = frozenset({S.QUEUED, S.UPLOADING, S.UPLOADED})
# states in which the job waits on an edit that Cleanvoice keeps for its retention only
AT_CLEANVOICE = frozenset({S.PROCESSING, S.FETCHING})
ORPHAN_RECHECK_SECONDS = 300.0
# resubmit_ambiguous = true sends a job again by itself this many times in its life, at most
AUTO_RESUBMITS = 1
MAX_ERROR = 2 * MAX_MESSAGE  # characters of an error kept in the store, the log and error.txt


class Outcomes(RuntimePart):
    """Applies the consequences of a step's failure to its job."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.log = structlog.get_logger("cvsyncd.pipeline")
        self._background: set[asyncio.Task[None]] = set()

    def handle(self, job_id: int, exc: CvsyncdError, folder: Folder) -> None:
        job = self.store.get(job_id)
        if job is None or job.state in TERMINAL:  # forgotten or settled meanwhile
            return
        if isinstance(exc, AmbiguousApiError) and job.state is S.SUBMITTING:
            self.ambiguous_submit(job, exc.message)
        elif isinstance(exc, AccountApiError):
            pause = self.runtime.pause
            pause.engage(account_trouble(exc))
            self.retry_later(job, exc.message, at=pause.check_at, count=False)
        elif isinstance(exc, TransientApiError | AmbiguousApiError):
            if job.state in AT_CLEANVOICE and schedule.has_expired(
                self.config, job.submitted_at, time.time()
            ):
                # retried until the edit's files are gone at Cleanvoice: then it is over
                self.fail(job, schedule.expired_message(self.config, job), folder)
            else:
                self.retry_later(job, exc.message, retry_after=exc.retry_after)
        elif isinstance(exc, EditFailed):
            self.fail(job, exc.message, folder, remote_failed=True)
        elif isinstance(exc, PermanentApiError):
            self.fail(job, exc.message, folder)
        elif isinstance(exc, JobError):
            if exc.retryable:
                self.retry_later(job, exc.message)
            else:
                self.fail(job, exc.message, folder)
        elif isinstance(exc, StoreError):
            self.log.warning(ev.JOB_CHANGED_MEANWHILE, job=job_id, error=str(exc))
        else:
            self.retry_later(job, str(exc))

    def handle_os_error(self, job_id: int, exc: OSError, folder: Folder) -> None:
        job = self.store.get(job_id)
        if job is None:
            return
        where = f" ({exc.filename})" if exc.filename else ""
        text = f"{exc.strerror or exc}{where}"
        if exc.errno in RETRYABLE_ERRNOS:
            self.retry_later(job, f"{text}; will try again once the problem is fixed")
        elif exc.errno == errno.ENOENT and job.state in INPUT_STATES:
            if inbox.unavailable(folder, None) or inbox.looks_emptied(folder):
                self.retry_later(
                    job,
                    f"{text}; the inbox looks unavailable or empty: waiting for it to come back",
                )
            else:
                self.fail(
                    job,
                    f"the input disappeared (deleted or moved away) before it was uploaded: {text}",
                    folder,
                )
        elif job.state in INPUT_STATES:
            self.fail(job, f"cannot read the input: {text}", folder)
        else:
            self.retry_later(job, f"{text}; fix this and the job will carry on")

    def unexpected(self, job_id: int) -> None:
        job = self.store.get(job_id)
        if job is None:
            return
        if job.state is S.SUBMITTING:
            self.ambiguous_submit(job, "an internal error interrupted the create-edit request")
        else:
            self.retry_later(job, "internal error (details in the daemon's log)")

    def retry_later(
        self,
        job: Job,
        message: str,
        *,
        retry_after: float | None = None,
        at: float | None = None,
        count: bool = True,
    ) -> None:
        """Send the job back to its last safe state, to be retried after a back-off."""
        attempts = job.attempts + 1 if count else job.attempts
        message = plain(message, MAX_ERROR)
        daemon = self.config.daemon
        when = (
            at
            if at is not None
            else time.time()
            + backoff_delay(
                max(attempts, 1),
                base=daemon.retry_initial_seconds,
                cap=daemon.retry_max_seconds,
                retry_after=retry_after,
            )
        )
        state = SAFE_STATE.get(job.state, job.state)
        if count:
            self.client.counters.retries += 1  # for /metrics
        fields: dict[str, Any] = {"attempts": attempts, "next_attempt_at": when, "error": message}
        if state is job.state:
            self.store.update(job.id, state, None, **fields)
        else:
            self.store.transition(job.id, job.state, state, message, **fields)
        self.log.warning(
            ev.JOB_RETRY,
            job=job.id,
            path=job.name,
            state=str(state),
            attempt=attempts,
            in_seconds=round(when - time.time(), 1),
            error=message,
        )

    def ambiguous_submit(self, job: Job, what: str) -> None:
        """A create-edit request whose outcome is unknown: the edit may exist and be billed.

        With ``resubmit_ambiguous = true`` the job is sent again, but only AUTO_RESUBMITS
        times in its life: a gateway that creates the edit and then always answers 502
        must not bill the recording again every few seconds. Otherwise, and after that,
        the job waits for the user.
        """
        edit_id = self.runtime.created_edits.get(job.id)
        if edit_id is not None:
            # the create did answer; only storing its edit failed (the store was away)
            record_edit(self.runtime, job, edit_id)
            self.log.info(ev.JOB_SUBMITTED, job=job.id, path=job.name, edit_id=edit_id, late=True)
            return
        cfg = self.config.path
        resubmits = int(job.facts.get("resubmits") or 0)
        if self.config.daemon.resubmit_ambiguous and resubmits < AUTO_RESUBMITS:
            self.store.transition(
                job.id,
                S.SUBMITTING,
                S.UPLOADED,
                f"{what}; resubmitting because resubmit_ambiguous = true (may bill twice)",
                next_attempt_at=time.time() + 5.0,
                error=what,
                facts={**job.facts, "resubmits": resubmits + 1},
            )
            self.log.warning(
                ev.JOB_RESUBMITTING,
                job=job.id,
                path=job.name,
                error=what,
            )
            return
        again = (
            " It was already sent again once because resubmit_ambiguous = true, so it may "
            "have been billed twice; cvsyncd will not send it again by itself."
            if resubmits
            else ""
        )
        message = (
            f"{what}. Cleanvoice may or may not have created (and billed) an edit for this "
            f"recording, so cvsyncd did not send it again.{again} Look for it in your "
            f"Cleanvoice dashboard, then run `cvsyncd retry -c {cfg} {job.id}` to submit it "
            f"again, or `cvsyncd forget -c {cfg} {job.id}` to drop it"
        )
        job = self.store.transition(
            job.id, S.SUBMITTING, S.NEEDS_ATTENTION, message, error=message, finished_at=time.time()
        )
        self.log.error(ev.JOB_NEEDS_ATTENTION, job=job.id, path=job.name, error=what)
        self._announce(job)

    def fail(self, job: Job, message: str, folder: Folder, *, remote_failed: bool = False) -> None:
        """Fail the job for good and put its input where the user will see why.

        The remote edit is deleted only when Cleanvoice itself said it failed
        (``remote_failed``): any other reason (a cap, a local problem) leaves a paid edit
        where it is, until its retention runs out, so that nothing paid for is thrown away.
        """
        if S.FAILED not in TRANSITIONS[job.state]:
            # past the point of no return (outputs written): keep trying instead
            self.retry_later(job, message)
            return
        if job.edit_id and remote_failed:
            self._forget_remote(job.edit_id)
        message = plain(message, MAX_ERROR)
        facts = {**job.facts, "edit_failed": True} if remote_failed else dict(job.facts)
        job = self.store.transition(
            job.id,
            job.state,
            S.FAILED,
            message,
            error=message,
            finished_at=time.time(),
            facts=facts,
        )
        resumable = can_resume(self.config, job)
        try:
            moved, _ = set_aside_failed_input(
                folder, job, message, self.config.path, resumable=resumable
            )
        except OSError as exc:
            self.log.error(ev.JOB_SET_ASIDE_FAILED, job=job.id, path=job.name, error=str(exc))
            moved = None
        if moved:
            facts = {**job.facts, "input_at": str(moved)}
            job = self.store.update(job.id, S.FAILED, f"input moved to {moved}", facts=facts)
            # a move changes a file's change time: record it, so that the file is still
            # known as the one taken (a retry reads it from there)
            for position in range(len(job.inputs)):
                with contextlib.suppress(OSError):
                    st = os.lstat(current_input_path(folder, job, position))
                    self.store.set_input(job.id, position, ctime_ns=st.st_ctime_ns)
        # said once the input and its error note are in place
        self.log.error(ev.JOB_FAILED, job=job.id, path=job.name, error=message, input_at=moved)
        self._announce(job)

    def _announce(self, job: Job) -> None:
        folder = self.runtime.folder_of(job)
        if folder is not None:
            self.runtime.notices.job_ended(job, folder)

    def _forget_remote(self, edit_id: str) -> None:
        """Ask Cleanvoice to delete a failed edit's files now (best effort, in the background)."""

        async def delete() -> None:
            with contextlib.suppress(ApiError):
                await self.client.delete_edit(edit_id)

        task = asyncio.get_running_loop().create_task(delete())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def hold_orphan(self, job: Job) -> None:
        """A job whose folder left the config waits (the folder may come back)."""
        message = f"its folder {job.folder} is no longer in the config; waiting"
        if job.error != message:
            self.log.warning(ev.JOB_FOLDER_GONE, job=job.id, path=job.name)
        self.store.update(
            job.id,
            job.state,
            None,
            error=message,
            next_attempt_at=time.time() + ORPHAN_RECHECK_SECONDS,
        )


def can_resume(config: Config, job: Job, now: float | None = None) -> bool:
    """Whether a failed job's edit is still at Cleanvoice to be fetched again: it has one,
    Cleanvoice did not fail it, its result was usable, and its retention has not run out."""
    return (
        job.edit_id is not None
        and job.submitted_at is not None
        and not job.facts.get("edit_failed")
        and not job.facts.get("edit_unusable")  # e.g. a cleaned sound that did not fit the video
        and not schedule.has_expired(config, job.submitted_at, time.time() if now is None else now)
    )
