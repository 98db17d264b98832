"""The steps of a job up to its result, and its end: one side effect each, with the
state persisted around it (``delivery.py`` has the fetch and write steps).

::

    (intake.py) settled file → queued job (content fingerprint, preset snapshot)
    upload      queued → uploading → uploaded        (POST /upload, PUT the bytes)
    submit      uploaded → submitting → processing   (write-ahead intent, POST /edits)
    poll        processing → fetching                (GET /edits/{id} on a growing interval)
    fetch       fetching → writing                   (download the media, atomically)
    write       writing → disposing                  (render <stem>.cleanvoice.json …)
    dispose     disposing → done                     (keep/move/delete input, DELETE the edit)

A step raises a classified error (``errors.py``) when it cannot finish; ``outcomes.py``
decides what that means. A step that is interrupted anywhere leaves a state from which
it can be redone without a second bill (or, for a create-edit, is reported).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import structlog

from cvsyncd import inbox, inputs, media, presets, schedule
from cvsyncd.api import CleanvoiceClient, file_url_of
from cvsyncd.config import Config, Folder
from cvsyncd.delivery import Delivery
from cvsyncd.disposal import NotOurs, delete_taken, input_place, input_root, move_taken
from cvsyncd.errors import EditFailed, JobError, PermanentApiError, TransientApiError
from cvsyncd.failpoints import failpoint
from cvsyncd.fileops import (
    free_name,
)
from cvsyncd.jobs import InputFile, Job, JobState
from cvsyncd.outcomes import Outcomes
from cvsyncd.outputs import redact_result
from cvsyncd.store import ALL_FOLDERS, JsonText, Store

S = JobState
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"})
PROGRESS_EVERY = 5.0
REMOTE_DELETE_TRIES = 5
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def upload_name(path: Path) -> str:
    """A plain ASCII file name for Cleanvoice's storage (the extension kept)."""
    stem = _UNSAFE_NAME.sub("_", path.stem).strip("._") or "recording"
    suffix = _UNSAFE_NAME.sub("", path.suffix)
    return f"{stem[:80]}{suffix}"


def combined_fingerprint(inputs: Sequence[InputFile]) -> str:
    """The content fingerprint of a multi-track session: its tracks' names and contents."""
    lines = sorted(f"{Path(i.rel_path).name}:{i.fingerprint}" for i in inputs)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def missing_input(folder: Folder, path: Path) -> JobError:
    """An input is gone. If its whole inbox seems gone (an unmounted share), wait for it;
    otherwise the file was deleted, and the job fails saying so."""
    if inbox.unavailable(folder, None) or inbox.looks_emptied(folder):
        return JobError(
            f"{path} cannot be found and its inbox looks unavailable or empty; "
            "waiting for the inbox to come back",
            retryable=True,
        )
    return JobError(f"the input {path} disappeared (deleted or moved away) before it was uploaded")


def stored_result(result: Mapping[str, Any]) -> JsonText:
    """A result as the store keeps it: JSON, without any signed URL's query string."""
    return JsonText(json.dumps(redact_result(result)))


def refusal_message(exc: PermanentApiError) -> str:
    """Why Cleanvoice refused to create an edit, in its own words."""
    words = exc.said or exc.message
    code = f", {exc.code}" if exc.code and exc.code not in words else ""
    status = f"HTTP {exc.status}{code}" if exc.status else "refused"
    return (
        f"Cleanvoice refused to create an edit for this recording ({status}): {words}. "
        "Nothing was billed"
    )


def same_file(st: os.stat_result, recorded: InputFile) -> bool:
    return recorded.matches(st)


class Steps:
    def __init__(
        self,
        config: Config,
        store: Store,
        client: CleanvoiceClient,
        outcomes: Outcomes,
        delivery: Delivery,
    ):
        self.config = config
        self.store = store
        self.client = client
        self.outcomes = outcomes
        self.delivery = delivery
        self.log = structlog.get_logger("cvsyncd.pipeline")

    # -- upload ---------------------------------------------------------------------

    async def upload(self, job: Job, folder: Folder) -> None:
        job = await self._refresh_if_changed(job, folder)
        job = await self._probe(job, folder)
        if self._held(folder):
            return  # `cvsyncd pause` came in meanwhile: no upload starts after it
        job = self.store.transition(job.id, S.QUEUED, S.UPLOADING, "uploading")
        failpoint("upload.started")
        log = self.log.bind(job=job.id, path=job.name)
        log.info("uploading", size=sum(i.size for i in job.inputs))
        for position, recorded in enumerate(job.inputs):
            root, rel = input_place(folder, job, position)
            signed = await self.client.request_upload_url(upload_name(Path(rel)))
            failpoint("upload.signed")
            with self._taken(folder, root, rel, recorded) as source:
                await self.client.upload_file(
                    signed, source, recorded.size, on_progress=self._progress_writer(job)
                )
                failpoint("upload.sent")
                # the same size, mtime, change time and inode as when it was fingerprinted:
                # no byte can have changed (a write moves the change time, which nobody can
                # set); checked on the descriptor the bytes were read from
                if not recorded.matches(os.fstat(source.fileno())):
                    raise JobError(
                        f"{rel} changed while it was being uploaded; "
                        "the new content will be taken once it has settled",
                        retryable=True,
                    )
            self.store.set_input(job.id, position, file_url=file_url_of(signed))
        self.store.transition(
            job.id,
            S.UPLOADING,
            S.UPLOADED,
            "uploaded",
            attempts=0,
            error=None,
            progress=None,
            next_attempt_at=0,
        )
        failpoint("upload.done")
        log.info("uploaded")

    @contextlib.contextmanager
    def _taken(
        self, folder: Folder, root: Path, rel: str, recorded: InputFile
    ) -> Iterator[IO[bytes]]:
        """The input a job took, open, proven to be it (see ``inputs.open_taken``)."""
        try:
            with inputs.open_taken(root, rel, recorded) as source:
                yield source
        except inputs.InputRefused as exc:
            if exc.kind == "missing":
                raise missing_input(folder, root / rel) from None
            raise
        except inputs.InputChanged:
            raise JobError(
                f"{rel} changed since it was taken; its new content will be taken",
                retryable=True,
            ) from None

    def _held(self, folder: Folder) -> bool:
        """Whether ``cvsyncd pause`` holds this folder's new work, as the store says now
        (read afresh: a pause must count from the moment the command returned)."""
        holds = self.store.holds()
        return ALL_FOLDERS in holds or folder.key in holds

    def _progress_writer(self, job: Job) -> Any:
        last = [time.monotonic()]
        size = sum(i.size for i in job.inputs)

        def write(sent: int) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY:
                last[0] = now
                self.store.update(
                    job.id, S.UPLOADING, None, progress={"uploaded": sent, "size": size}
                )

        return write

    async def _probe(self, job: Job, folder: Folder) -> Job:
        """Check that every input is media, and note its duration, before paying for it."""
        durations = []
        for position, recorded in enumerate(job.inputs):
            root, rel = input_place(folder, job, position)

            def probe(root: Path = root, rel: str = rel, recorded: InputFile = recorded) -> Any:
                with self._taken(folder, root, rel, recorded) as source:
                    return media.probe_file(source)

            found = await asyncio.to_thread(probe)
            if found.problem:
                raise JobError(f"{recorded.rel_path}: {found.problem}")
            durations.append(found.duration)
        known = [d for d in durations if d]
        duration = max(known) if known else None
        if duration == job.facts.get("duration"):
            return job
        return self.store.update(job.id, job.state, None, facts={**job.facts, "duration": duration})

    async def _refresh_if_changed(self, job: Job, folder: Folder) -> Job:
        """Before uploading, make sure the job describes the file as it is now.

        A regular file that changed since it was taken gets a new fingerprint (the job
        restarts with the new content); one that is still changing waits for the settle
        window. A path that is no longer a regular file inside its folder is refused
        (``inputs.py``); a new content that another job already has is that job's.
        """
        changed = False
        for position, recorded in enumerate(job.inputs):
            root, rel = input_place(folder, job, position)
            if await asyncio.to_thread(inputs.still_taken, root, rel, recorded):
                continue
            try:
                st, fingerprint = await asyncio.to_thread(inputs.fingerprint, root, rel)
            except inputs.InputRefused as exc:
                if exc.kind == "missing":
                    raise missing_input(folder, root / rel) from None
                raise
            except inputs.InputChanged:
                raise JobError(
                    f"{rel} is still being written; waiting for it to settle", retryable=True
                ) from None
            self.store.set_input(
                job.id,
                position,
                size=st.st_size,
                mtime_ns=st.st_mtime_ns,
                ctime_ns=st.st_ctime_ns,
                inode=st.st_ino,
                fingerprint=fingerprint,
            )
            changed = True
        if not changed:
            return job
        fresh = self.store.get(job.id)
        assert fresh is not None
        fingerprint = (
            combined_fingerprint(fresh.inputs)
            if fresh.facts.get("session")
            else fresh.inputs[0].fingerprint
        )
        other = self.store.find_by_identity(job.folder, job.name, fingerprint)
        if other is not None and other.id != job.id:
            # the file there now is another job's recording: this job's content is gone
            raise JobError(
                f"{job.name} was replaced by a newer recording, which is job {other.id}; "
                "this job's recording is no longer there, so nothing more is done for it",
                superseded_by=other.id,
            )
        self.log.info(
            "input changed before upload; taking the new content", job=job.id, path=job.name
        )
        return self.store.update(
            job.id,
            job.state,
            "the input changed before upload; taking its new content",
            fingerprint=fingerprint,
        )

    # -- submit ---------------------------------------------------------------------

    async def submit(self, job: Job, folder: Folder) -> None:
        for position, recorded in enumerate(job.inputs):
            root, rel = input_place(folder, job, position)
            if not await asyncio.to_thread(inputs.still_taken, root, rel, recorded):
                self.store.transition(
                    job.id,
                    S.UPLOADED,
                    S.QUEUED,
                    "the file changed after upload; uploading it again",
                    next_attempt_at=time.time() + self.config.daemon.settle_seconds,
                )
                return
        files = [i.file_url for i in job.inputs]
        if not all(files):
            self.store.transition(job.id, S.UPLOADED, S.QUEUED, "upload record incomplete")
            return
        await self.client.reserve("submit")  # wait for the budget before the intent
        if self._held(folder):
            return  # `cvsyncd pause` came in meanwhile: no submission starts after it
        # write-ahead intent: from here until the edit id is stored, the outcome is unknown
        job = self.store.transition(job.id, S.UPLOADED, S.SUBMITTING, "creating the edit")
        failpoint("submit.intent")
        self.log.info("submitting", job=job.id, path=job.name)
        options = dict(job.options)
        template_id = options.pop(presets.TEMPLATE_KEY, None)
        try:
            edit_id = await self.client.create_edit(
                [f for f in files if f],
                options,
                upload_type="multitrack" if job.is_multitrack else None,
                template_id=template_id,
                reserved=True,
            )
        except PermanentApiError as exc:
            # refused outright (400/404/413/422): nothing was created, nothing billed
            raise PermanentApiError(refusal_message(exc), status=exc.status) from None
        failpoint("submit.posted")
        now = time.time()
        self.store.transition(
            job.id,
            S.SUBMITTING,
            S.PROCESSING,
            f"edit {edit_id} created",
            edit_id=edit_id,
            submitted_at=now,
            attempts=0,
            error=None,
            next_attempt_at=now + schedule.first_poll_delay(self.config, job.facts.get("duration")),
            facts={**job.facts, "polls": 0},
        )
        failpoint("submit.done")
        self.outcomes.pause.submitted()
        self.log.info("submitted", job=job.id, path=job.name, edit_id=edit_id)

    # -- poll -----------------------------------------------------------------------

    async def poll(self, job: Job, folder: Folder) -> None:
        assert job.edit_id
        status = await self.client.get_edit(job.edit_id)  # odd answers: transient
        if status.succeeded:
            assert status.result is not None
            self.delivery.remember(job.id, status.result)
            # a long transcript is megabytes: its copy for the store is made off the loop
            stored = await asyncio.to_thread(stored_result, status.result)
            failpoint("poll.success")
            self.store.transition(
                job.id,
                S.PROCESSING,
                S.FETCHING,
                "Cleanvoice finished",
                result=stored,
                attempts=0,
                error=None,
                progress={"status": status.status},
                next_attempt_at=0,
            )
            failpoint("poll.done")
            self.log.info("edit finished", job=job.id, path=job.name, edit_id=job.edit_id)
            return
        if status.failed:
            reason = status.message or "it gave no reason"
            raise EditFailed(f"Cleanvoice could not process this recording: {reason}")
        now = time.time()
        if schedule.has_expired(self.config, job.submitted_at, now):
            raise PermanentApiError(schedule.expired_message(self.config, job))
        polls = int(job.facts.get("polls", 0)) + 1
        duration = job.facts.get("duration")
        delay = schedule.next_poll_delay(
            self.config, polls, duration, result_pending=status.status == "SUCCESS"
        )
        progress: dict[str, Any] = {"status": status.status, "percent": status.percent}
        facts = {**job.facts, "polls": polls}
        if schedule.is_overdue(self.config, duration, now - (job.submitted_at or now)):
            progress["overdue"] = True
            if not job.facts.get("overdue"):
                facts["overdue"] = True
                self.log.warning(
                    "edit is taking far longer than expected; still waiting",
                    job=job.id,
                    path=job.name,
                    edit_id=job.edit_id,
                    status=status.status,
                    running_minutes=round((now - (job.submitted_at or now)) / 60),
                )
        self.store.update(
            job.id,
            S.PROCESSING,
            None,
            progress=progress,
            facts=facts,
            attempts=0,
            error=None,
            next_attempt_at=now + delay,
        )

    # -- dispose --------------------------------------------------------------------

    async def dispose(self, job: Job, folder: Folder) -> None:
        if folder.after != "keep":
            job = await self._dispose_inputs(job, folder)
        if job.edit_id:
            try:
                await self.client.delete_edit(job.edit_id)
                failpoint("dispose.deleted")
            except TransientApiError:
                if job.attempts + 1 < REMOTE_DELETE_TRIES:
                    raise
                self.log.warning(
                    "could not delete the edit at Cleanvoice; it expires by itself after 7 days",
                    job=job.id,
                    edit_id=job.edit_id,
                )
            except Exception as exc:
                self.log.warning(
                    "could not delete the edit at Cleanvoice",
                    job=job.id,
                    edit_id=job.edit_id,
                    error=str(exc),
                )
        done = self.store.transition(
            job.id,
            S.DISPOSING,
            S.DONE,
            "done",
            finished_at=time.time(),
            attempts=0,
            error=None,
            next_attempt_at=0,
            progress=None,
        )
        failpoint("dispose.done")
        if self.outcomes.notices is not None:
            self.outcomes.notices.job_ended(done, folder)
        self.log.info(
            "done", job=job.id, path=job.name, after=folder.after, moved_to=job.disposed_to
        )

    async def _dispose_inputs(self, job: Job, folder: Folder) -> Job:
        """Move or delete the input — only if it is still the content we processed."""
        if job.facts.get("adhoc"):
            return job  # given to `cvsyncd process` from outside any inbox: never touched
        root = input_root(folder, job)
        present = await asyncio.to_thread(os.path.lexists, root)
        if folder.after == "delete":
            try:
                await asyncio.to_thread(delete_taken, folder, job)
            except NotOurs as exc:
                self._left_in_place(job, str(exc))
            return job
        if job.disposed_to is None:  # plan the name first, so a redo finds the file
            target = await asyncio.to_thread(free_name, folder.done_dir / job.name)
            job = self.store.update(job.id, S.DISPOSING, None, disposed_to=str(target))
            failpoint("dispose.planned")
        target = Path(str(job.disposed_to))
        if not present:
            if not await asyncio.to_thread(os.path.lexists, target) and (
                inbox.unavailable(folder, None) or inbox.looks_emptied(folder)
            ):
                raise missing_input(folder, root)
            return job  # moved already (a redo after a crash), or removed by the user
        try:
            await asyncio.to_thread(move_taken, folder, job, target)
            failpoint("dispose.moved")
        except NotOurs as exc:
            self._left_in_place(job, str(exc))
            return self.store.update(job.id, S.DISPOSING, None, disposed_to=None)
        except FileExistsError:
            self.store.update(job.id, S.DISPOSING, None, disposed_to=None)
            raise JobError(
                f"{target} appeared meanwhile; choosing another name", retryable=True
            ) from None
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise JobError(
                    f"cannot move the input to {target.parent}: {exc.strerror}; "
                    "fix the permissions and it will be retried",
                    retryable=True,
                ) from None
            raise
        return job

    def _left_in_place(self, job: Job, why: str) -> None:
        self.log.warning(
            "the input is no longer the recording that was processed; leaving it in place",
            job=job.id,
            path=job.name,
            reason=why,
        )
