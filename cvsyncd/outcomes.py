"""What a failed step means for its job — decided here, in one place.

- transient (network, timeouts, 429/5xx, a full disk): the job goes back to the last safe
  state and waits, with exponential backoff and jitter, honouring ``Retry-After``;
- account (bad key, no credits): nothing fails; all new uploads and submissions pause
  until an account check succeeds (``Pause``);
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

import structlog

from cvsyncd import inbox, schedule
from cvsyncd.answers import MAX_MESSAGE, account_balance, plain, says_insufficient_credits
from cvsyncd.api import CleanvoiceClient, backoff_delay
from cvsyncd.apikey import key_signature, read_api_key
from cvsyncd.config import Config, Folder
from cvsyncd.disposal import current_input_path, set_aside_failed_input
from cvsyncd.errors import (
    AccountApiError,
    AmbiguousApiError,
    ApiError,
    ConfigError,
    CvsyncdError,
    EditFailed,
    JobError,
    PermanentApiError,
    StoreError,
    TransientApiError,
)
from cvsyncd.jobs import TERMINAL, TRANSITIONS, Job, JobState
from cvsyncd.notices import Notices
from cvsyncd.redact import register_secret
from cvsyncd.store import Store

S = JobState
# where a job returns when a step of it must be redone later
SAFE_STATE = {S.UPLOADING: S.QUEUED, S.SUBMITTING: S.UPLOADED}
RETRYABLE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.ENOMEM})
INPUT_STATES = frozenset({S.QUEUED, S.UPLOADING, S.UPLOADED})
# states in which the job waits on an edit that Cleanvoice keeps for its retention only
AT_CLEANVOICE = frozenset({S.PROCESSING, S.FETCHING})
ORPHAN_RECHECK_SECONDS = 300.0
MAX_ERROR = 2 * MAX_MESSAGE  # characters of an error kept in the store, the log and error.txt


class Pause:
    """Account-level trouble: no new uploads or submissions until the account works.

    The reason is kept in the store so that ``cvsyncd status`` can show it; after a
    restart the account is checked again at once. While paused, the account is checked
    with a growing back-off, and at once when the key file changes (a new key is read).
    """

    def __init__(self, store: Store, config: Config | None = None):
        self.store = store
        self.config = config
        self.reason: str | None = store.account_pause()
        self.check_at = 0.0
        self.strikes = 0
        self.log = structlog.get_logger("cvsyncd.pause")
        self._key_signature = key_signature(config) if config else ()
        self._check: asyncio.Task[None] | None = None
        self._credit_floor: float | None = None  # the balance when credits ran out
        self.trial = False  # one step of new work may go, to see if the account works

    @property
    def active(self) -> bool:
        return self.reason is not None

    def holds_back(self, new_work_running: int) -> bool:
        """Whether a step of new work (an upload or a submission) must wait now.

        While paused nothing goes, except during a trial: then one step at a time.
        """
        if not self.active:
            return False
        return not self.trial or new_work_running > 0

    def engage(self, reason: str) -> None:
        self.strikes += 1
        self.trial = False
        # account checks back off more slowly than retries: 1 minute, doubling to 30 (with
        # the default retry_initial_seconds = 5 and retry_max_seconds = 900)
        daemon = self.config.daemon if self.config else None
        base = 12 * daemon.retry_initial_seconds if daemon else 60.0
        cap = 2 * daemon.retry_max_seconds if daemon else 1800.0
        self.check_at = time.time() + backoff_delay(self.strikes, base=base, cap=cap)
        if reason != self.reason:
            self.log.error(
                "paused all new uploads and submissions",
                reason=reason,
                recheck_in=round(self.check_at - time.time()),
            )
            self.store.set_account_pause(reason)
        self.reason = reason

    def release(self) -> None:
        self._credit_floor = None
        self.trial = False
        if self.reason is not None:
            self.log.info("the account works again; resuming uploads and submissions")
            self.store.set_account_pause(None)
        self.reason = None

    def _reload_key_if_changed(self, client: CleanvoiceClient) -> None:
        if self.config is None:
            return
        signature = key_signature(self.config)
        if signature == self._key_signature:
            return
        self._key_signature = signature
        try:
            key = read_api_key(self.config)
        except ConfigError as exc:
            self.log.error(
                "the API key changed but cannot be used",
                error="; ".join(str(p) for p in exc.problems),
            )
            return
        register_secret(key)
        client.set_api_key(key)
        self.check_at = 0.0  # try the new key now
        self.log.info("the API key changed; checking the account with the new key")

    def submitted(self) -> None:
        """A create-edit went through: the account is fine."""
        self.strikes = 0
        self.release()

    def maybe_recheck(self, client: CleanvoiceClient) -> None:
        """When paused and the back-off has passed, ask the account (in the background)
        whether to resume; the scheduler's loop does not wait for the answer."""
        if not self.active or self.trial or (self._check is not None and not self._check.done()):
            return
        self._reload_key_if_changed(client)
        if time.time() < self.check_at:
            return
        self._check = asyncio.get_running_loop().create_task(self._recheck(client))

    async def _recheck(self, client: CleanvoiceClient) -> None:
        try:
            account = await client.account()
        except AccountApiError as exc:
            self.engage(account_trouble(exc))
            return
        except ApiError as exc:
            self.check_at = time.time() + 60.0
            self.log.warning("could not check the account", error=exc.message)
            return
        balance = account_balance(account)
        if self.reason == NO_CREDITS:
            # Credit is back only if the balance rose above what it was when work stopped.
            # An account body without a balance (the SDK's AccountInfo has none that the
            # docs name), or a first look after a restart, cannot tell: then one recording
            # is let through as a trial, and a second refusal pauses again.
            if balance is not None and self._credit_floor is not None:
                if balance > self._credit_floor:
                    self.release()
                else:
                    self.engage(NO_CREDITS)
                return
            if balance is not None:
                self._credit_floor = balance
            self.begin_trial()
            return
        if balance is not None and balance <= 0:
            self.engage(NO_CREDITS)
            return
        self.release()

    def begin_trial(self) -> None:
        """Let one upload or submission through to learn whether the account works again."""
        if not self.trial:
            self.log.info(
                "the account does not tell whether credit was added; trying one recording"
            )
        self.trial = True


class Outcomes:
    """Applies the consequences of a step's failure to its job."""

    def __init__(
        self,
        config: Config,
        store: Store,
        client: CleanvoiceClient,
        pause: Pause,
        notices: Notices | None = None,
    ):
        self.config = config
        self.store = store
        self.client = client
        self.pause = pause
        self.notices = notices
        self.log = structlog.get_logger("cvsyncd.pipeline")
        self._background: set[asyncio.Task[None]] = set()

    def handle(self, job_id: int, exc: CvsyncdError, folder: Folder) -> None:
        job = self.store.get(job_id)
        if job is None or job.state in TERMINAL:  # forgotten or settled meanwhile
            return
        if isinstance(exc, AmbiguousApiError) and job.state is S.SUBMITTING:
            self.ambiguous_submit(job, exc.message)
        elif isinstance(exc, AccountApiError):
            self.pause.engage(account_trouble(exc))
            self.retry_later(job, exc.message, at=self.pause.check_at, count=False)
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
            self.log.warning("job changed while a step ran", job=job_id, error=str(exc))
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
        fields = {"attempts": attempts, "next_attempt_at": when, "error": message}
        if state is job.state:
            self.store.update(job.id, state, None, **fields)
        else:
            self.store.transition(job.id, job.state, state, message, **fields)
        self.log.warning(
            "will retry",
            job=job.id,
            path=job.name,
            state=str(state),
            attempt=attempts,
            in_seconds=round(when - time.time(), 1),
            error=message,
        )

    def ambiguous_submit(self, job: Job, what: str) -> None:
        cfg = self.config.path
        if getattr(self.config.daemon, "resubmit_ambiguous", False):
            self.store.transition(
                job.id,
                S.SUBMITTING,
                S.UPLOADED,
                f"{what}; resubmitting because resubmit_ambiguous = true (may bill twice)",
                next_attempt_at=time.time() + 5.0,
                error=what,
            )
            self.log.warning(
                "create-edit outcome unknown; resubmitting as configured",
                job=job.id,
                path=job.name,
                error=what,
            )
            return
        message = (
            f"{what}. Cleanvoice may or may not have created (and billed) an edit for this "
            "recording, so cvsyncd did not send it again. Look for it in your Cleanvoice "
            f"dashboard, then run `cvsyncd retry -c {cfg} {job.id}` to submit it again, or "
            f"`cvsyncd forget -c {cfg} {job.id}` to drop it"
        )
        job = self.store.transition(
            job.id, S.SUBMITTING, S.NEEDS_ATTENTION, message, error=message, finished_at=time.time()
        )
        self.log.error(
            "needs attention: create-edit outcome unknown", job=job.id, path=job.name, error=what
        )
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
            self.log.error(
                "could not move the failed input aside", job=job.id, path=job.name, error=str(exc)
            )
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
        self.log.error("failed", job=job.id, path=job.name, error=message, input_at=moved)
        self._announce(job)

    def _announce(self, job: Job) -> None:
        folder = next((f for f in self.config.folders if f.key == job.folder), None)
        if self.notices is not None and folder is not None:
            self.notices.job_ended(job, folder)

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
            self.log.warning("job's folder is gone from the config", job=job.id, path=job.name)
        self.store.update(
            job.id,
            job.state,
            None,
            error=message,
            next_attempt_at=time.time() + ORPHAN_RECHECK_SECONDS,
        )


NO_CREDITS = (
    "the Cleanvoice account has no credits left. Add credits in the Cleanvoice "
    "dashboard; work resumes by itself once the balance goes up"
)


def account_trouble(exc: AccountApiError) -> str:
    """Say in plain words why Cleanvoice refused, and what brings the daemon back."""
    if exc.status == 401:
        return (
            "Cleanvoice refused the API key (HTTP 401). Put a valid key where cvsyncd "
            "reads it (see `cvsyncd check`); work resumes by itself once the key works"
        )
    if says_insufficient_credits(exc.status, exc.code, exc.said or exc.message):
        return NO_CREDITS
    return (
        f"Cleanvoice refused a request for this account: {exc.message}. Work resumes "
        "by itself once the account is in order"
    )


def can_resume(config: Config, job: Job, now: float | None = None) -> bool:
    """Whether a failed job's edit is still at Cleanvoice to be fetched again: it has one,
    Cleanvoice did not fail it, and its retention has not run out."""
    return (
        job.edit_id is not None
        and job.submitted_at is not None
        and not job.facts.get("edit_failed")
        and not schedule.has_expired(config, job.submitted_at, time.time() if now is None else now)
    )
