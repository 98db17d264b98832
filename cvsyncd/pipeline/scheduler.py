"""The job scheduler: which step of which job runs next, within the configured limits.

The database is the truth. Each turn of the loop asks the store for jobs whose next
attempt is due and starts the step their state calls for (the ``steps`` table of
:class:`Pipeline`, keyed by job state), as long as the
limits allow: ``max_concurrent_uploads`` files being uploaded or uploaded-but-not-yet-
submitted, ``max_active_edits`` edits at Cleanvoice, the same number of downloads as
uploads. When a step fails, ``outcomes.py`` decides what the failure means for the job.

Stopping is in two stages, like uvicorn's: the first request stops new steps and lets
running ones finish for ``stop_grace_seconds`` (a create-edit in flight is never cut off:
cutting it would leave the job ambiguous); the second request, or the end of the grace
period, cancels what is left. Every step persists its state before and after
its side effect, so a cancelled step is simply redone (or, for a create-edit, reported)
at the next start.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from cvsyncd import events as ev
from cvsyncd.aio import wait_for_any
from cvsyncd.config import Folder
from cvsyncd.errors import CvsyncdError, StoreUnavailable
from cvsyncd.failpoints import armed
from cvsyncd.jobs import ACTIVE, ALL_FOLDERS, Job, JobState
from cvsyncd.jobs.queries import Due
from cvsyncd.pipeline import outage
from cvsyncd.pipeline.account import AccountPause
from cvsyncd.pipeline.delivery import Delivery
from cvsyncd.pipeline.disposal import Disposals
from cvsyncd.pipeline.intake import Intake
from cvsyncd.pipeline.outcomes import Outcomes
from cvsyncd.pipeline.runtime import Runtime, RuntimePart
from cvsyncd.pipeline.submit import Submissions
from cvsyncd.pipeline.upload import Uploads

S = JobState
# At rest: intake, finished steps, operator commands (through the supervisor) and an
# inbox coming back wake the loop at once; the tick is a safety net. While new work is
# paused for the account, the loop looks more often (a replaced key file, the recheck).
IDLE_TICK = 30.0
PAUSED_TICK = 5.0
PAGE = 64  # due jobs read at a time when the kind of step has no limit
# once woken, the loop waits this long before its pass, so that the steps finishing in a
# burst share one pass (each pass reads the counts, the holds and the due jobs anew)
GATHER_SECONDS = 0.005

StepFn = Callable[[Job, Folder], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class Step:
    """What a job in some state needs next: a kind (for limits and logs) and its code."""

    kind: str  # upload, submit, poll, fetch, write, dispose, duplicate
    run: StepFn


class Pipeline(RuntimePart):
    """Drives every job from queued to done (or failed / needs_attention)."""

    def __init__(
        self,
        runtime: Runtime,
        unavailable: Callable[[str], str | None] = lambda key: None,
    ):
        self.runtime = runtime
        self.unavailable = unavailable  # why a folder's inbox cannot be used now
        self.holds: dict[str, str] = runtime.store.holds()  # `cvsyncd pause`
        self.log = structlog.get_logger("cvsyncd.pipeline")
        self.outcomes = Outcomes(runtime)
        self.delivery = Delivery(runtime)
        self.intake_steps = Intake(runtime)
        uploads, submissions = Uploads(runtime), Submissions(runtime, self.delivery)
        disposals = Disposals(runtime)
        # the step each state calls for: the whole pipeline in one table
        self.steps: Mapping[JobState, Step] = {
            S.QUEUED: Step("upload", uploads.upload),
            S.UPLOADED: Step("submit", submissions.submit),
            S.PROCESSING: Step("poll", submissions.poll),
            S.FETCHING: Step("fetch", self.delivery.fetch),
            S.WRITING: Step("write", self.delivery.write),
            S.DISPOSING: Step("dispose", disposals.dispose),
            # a held job falls due when its cap's period turns or the caps changed
            S.HELD: Step("recheck", uploads.guard.recheck),
        }
        self.settle_duplicate = Step("duplicate", self.intake_steps.duplicate)
        # the order a pass looks at due jobs: the end of the pipeline first (finishing
        # frees slots), and for queued jobs, duplicates apart from uploads
        self._due_order: list[tuple[JobState, Step, bool | None]] = [
            (state, self.steps[state], False if state is S.QUEUED else None)
            for state in reversed(list(self.steps))
        ]
        self._due_order.append((S.QUEUED, self.settle_duplicate, True))
        self._running: dict[int, tuple[str, asyncio.Task[None]]] = {}
        self._wake = asyncio.Event()
        self.heartbeat = time.monotonic()  # the last turn of the loop (for the watchdog)
        self.resting = False

    @property
    def pause(self) -> AccountPause:
        return self.runtime.pause

    @property
    def drain_seconds(self) -> float:
        return self.config.daemon.stop_grace_seconds

    def step_for(self, job: Job) -> Step | None:
        """Which step a due job needs next (None: none, it is final)."""
        if job.state is S.QUEUED and "duplicate_of" in job.facts:
            return self.settle_duplicate
        return self.steps.get(job.state)

    def wake(self) -> None:
        """Look for due work now rather than at the next tick."""
        self._wake.set()

    # -- recovery -------------------------------------------------------------------

    def recover(self) -> None:
        """Make the jobs left by a previous run (or a crash) safe to continue.

        An interrupted upload is redone; a create-edit whose answer never got stored is
        ambiguous (it may have been billed) and goes to needs_attention unless the user
        chose automatic resubmission; everything else resumes where it stopped.
        """
        for job in self.store.jobs([S.UPLOADING, S.SUBMITTING], mine=True):
            self.recover_job(job)

    def recover_job(self, job: Job) -> None:
        """Make one job whose step was cut short (a crash, the store away) safe to go on."""
        log = self.log.bind(job=job.id, path=job.name)
        if job.state is S.UPLOADING:
            self.store.transition(
                job.id,
                S.UPLOADING,
                S.QUEUED,
                "the upload was interrupted; it will be redone",
                next_attempt_at=0,
            )
            log.info(ev.JOB_UPLOAD_REDO)
        else:
            self.outcomes.ambiguous_submit(
                job, "cvsyncd stopped while the create-edit request was in flight"
            )

    # -- the loop -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, force: asyncio.Event) -> None:
        """Run steps until ``stop`` is set, then drain (until ``force`` or the grace ends)."""
        while not stop.is_set():
            self.heartbeat = time.monotonic()
            if armed("scheduler.stall"):  # test only: a hung scheduler for the watchdog test
                await stop.wait()
            try:
                self._after_outage()
                self.pause.maybe_recheck(self.client)
                self._start_due_steps()
                sleep = self._sleep_seconds()
            except StoreUnavailable as exc:  # the shared store is away: nothing new starts
                self.runtime.outage.down(exc)
                sleep = outage.RETRY_SECONDS
            self._wake.clear()
            self.resting = True  # waiting for work (or for the store) is not a stall
            await wait_for_any(stop, self._wake, timeout=sleep)
            if self._wake.is_set() and not stop.is_set():
                # steps finishing close together are looked after in one pass, not one each
                await asyncio.sleep(GATHER_SECONDS)
            self.resting = False
        await self._drain(force)

    def _after_outage(self) -> None:
        """Once the shared store answers again, the steps it cut short are recovered as
        after a crash (pipeline/outage.py)."""
        state = self.runtime.outage
        if not state.active and not state.interrupted:
            return
        self.store.ping()  # raises StoreUnavailable while it is still away
        for job_id in sorted(state.interrupted):
            if job_id in self._running:
                continue
            job = self.store.get(job_id)
            if job is not None and job.state in (S.UPLOADING, S.SUBMITTING):
                self.recover_job(job)
            state.interrupted.discard(job_id)
        if state.up():
            self.wake()

    def _sleep_seconds(self) -> float:
        """Until the next job falls due; jobs due now but waiting for a free slot are woken
        by the step that frees it, not by polling."""
        now = time.time()
        tick = PAUSED_TICK if self.pause.active else IDLE_TICK
        next_due = self.store.next_due_at(after=now)
        if next_due is None:
            return tick
        return min(tick, max(0.05, next_due - now))

    def _start_due_steps(self) -> None:
        """Start the steps that are due, as far as the limits allow.

        A pass reads from the store only what it can start: for each state, the next due
        jobs up to the free slots of that kind of step (a page at a time, further only when
        some were held back), so it costs O(free slots), not O(backlog). States are taken
        from the end of the pipeline backwards: finishing work frees slots for new work.
        """
        now = time.time()
        self.holds = self.store.holds()  # `cvsyncd pause` counts from the moment it returns
        counts = self.store.count_by_state(ACTIVE, mine=True)  # from the index only
        running_kinds = [kind for kind, _ in self._running.values()]
        limits = self.config.daemon
        free: dict[str, int] = {
            "upload": limits.max_concurrent_uploads
            - running_kinds.count("upload")
            - counts.get(S.UPLOADED, 0),
            "submit": limits.max_active_edits
            - counts.get(S.SUBMITTING, 0)
            - counts.get(S.PROCESSING, 0),
            "fetch": limits.max_concurrent_uploads - running_kinds.count("fetch"),
        }
        for state, step, duplicates in self._due_order:
            limited = step.kind in free
            after: tuple[float, int] | None = None
            while counts.get(state) and (not limited or free[step.kind] > 0):
                page_size = min(PAGE, free[step.kind]) if limited else PAGE
                page = self.store.due(state, now, page_size, after, duplicates)
                for due in page:
                    if due.id in self._running or not self._may_start(step, due, running_kinds):
                        continue
                    running_kinds.append(step.kind)
                    if limited:
                        free[step.kind] -= 1
                if len(page) < page_size:
                    break
                after = (page[-1].at, page[-1].id)

    def _may_start(self, step: Step, due: Due, running_kinds: list[str]) -> bool:
        """Start ``step`` for the due job unless its folder or the account holds it back."""
        folder = self.runtime.folder_by_key(due.folder)
        job = self.store.get(due.id) if folder is None or step.kind in NEW_WORK else None
        if folder is None:
            if job is not None:
                self.outcomes.hold_orphan(job)
            return False
        if step.kind in INBOX_STEPS and self.unavailable(folder.key):
            return False  # the folder is paused: its inbox is not there
        if step.kind in NEW_WORK and (ALL_FOLDERS in self.holds or folder.key in self.holds):
            return False  # the operator said `cvsyncd pause`
        if step.kind in NEW_WORK and self.pause.holds_back(
            sum(1 for k in running_kinds if k in NEW_WORK)
        ):
            return False  # the account is in trouble (a trial lets one step go)
        job = job or self.store.get(due.id)
        if job is None or self.step_for(job) is not step:
            return False  # changed meanwhile (or forgotten)
        self._start(step, job, folder)
        return True

    def _start(self, step: Step, job: Job, folder: Folder) -> None:
        task = asyncio.create_task(
            self._run_step(step, job, folder), name=f"job-{job.id}-{step.kind}"
        )
        self._running[job.id] = (step.kind, task)

    async def _run_step(self, step: Step, job: Job, folder: Folder) -> None:
        def log() -> Any:  # bound only when something is said (most steps say nothing here)
            return self.log.bind(job=job.id, path=job.name, step=step.kind)

        try:
            try:
                await step.run(job, folder)
            except asyncio.CancelledError:
                log().info(ev.JOB_STEP_INTERRUPTED)
                raise
            except StoreUnavailable:
                raise
            except CvsyncdError as exc:
                self.outcomes.handle(job.id, exc, folder)
            except OSError as exc:
                self.outcomes.handle_os_error(job.id, exc, folder)
            except Exception:
                log().exception(ev.JOB_STEP_ERROR)
                self.outcomes.unexpected(job.id)
        except StoreUnavailable as exc:  # cut short: recovered once the store is back
            self.runtime.outage.down(exc, job.id)
        finally:
            self._running.pop(job.id, None)
            self._wake.set()

    async def _drain(self, force: asyncio.Event) -> None:
        """Let running steps finish within the grace period; then cancel them.

        A create-edit still in flight when the grace ends is not cancelled (that would make
        its outcome unknown); its own request timeout bounds the wait. A second stop
        request (``force``) cancels everything at once.
        """
        if self._running:
            await self._drain_steps(force)
        await self.runtime.notices.drain(timeout=0.1 if force.is_set() else 10.0)

    async def _drain_steps(self, force: asyncio.Event) -> None:
        self.log.info(
            ev.PIPELINE_DRAINING,
            running=len(self._running),
            grace_seconds=self.drain_seconds,
        )
        await _wait_tasks(self._tasks(), force, self.drain_seconds)
        late = self._tasks(exclude_kind="submit")
        if late:
            self.log.warning(
                ev.PIPELINE_INTERRUPTING,
                interrupted=len(late),
            )
            await _cancel(late)
        submits = self._tasks()
        if submits:
            self.log.info(ev.PIPELINE_AWAITING_CREATE)
            await _wait_tasks(submits, force, self.client.deadline)
        await _cancel(self._tasks())

    def _tasks(self, exclude_kind: str | None = None) -> list[asyncio.Task[None]]:
        return [t for kind, t in self._running.values() if kind != exclude_kind and not t.done()]

    # -- intake (called by the watcher) ---------------------------------------------

    def is_known(self, folder: Folder, rel_path: str, size: int, mtime_ns: int) -> bool:
        """Whether this exact file (path, size, mtime) already became a job, or is one of a
        backlog its folder said to skip (``existing = "skip"``: seen, never taken). While
        the shared store is away: not known yet (intake then waits for it)."""
        try:
            return self.store.find_by_input(
                folder.key, rel_path, size, mtime_ns
            ) is not None or self.intake_steps.backlogs.skips(folder, rel_path, size, mtime_ns)
        except StoreUnavailable as exc:
            self.runtime.outage.down(exc)
            return False

    async def intake(self, folder: Folder, path: Path) -> str:
        """Turn a settled file into a job; return the verdict of ``Intake.take_file``.
        While the shared store is away the file stays a candidate ("changed"): the watcher
        offers it again after it settles once more (and is not read meanwhile)."""
        if self.runtime.outage.active:
            return "changed"
        try:
            verdict = await self.intake_steps.take_file(folder, path)
        except StoreUnavailable as exc:
            self.runtime.outage.down(exc)
            return "changed"
        if verdict == "queued":
            self.wake()
        return verdict


# steps that read or move the input, and so wait while its inbox is unavailable
INBOX_STEPS = frozenset({"upload", "submit", "dispose"})
# steps that start new (paid) work, held back by `cvsyncd pause`; running edits finish
NEW_WORK = frozenset({"upload", "submit"})


async def _wait_tasks(
    tasks: list[asyncio.Task[None]], force: asyncio.Event, timeout: float
) -> None:
    """Wait until all ``tasks`` are done, ``force`` is set, or ``timeout`` passes."""
    if not tasks:
        return
    everything = asyncio.ensure_future(asyncio.wait(tasks))  # cancelling this spares the tasks
    forced = asyncio.ensure_future(force.wait())
    try:
        await asyncio.wait(
            [everything, forced], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        forced.cancel()
        everything.cancel()


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
