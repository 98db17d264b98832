"""The upload step: queued → uploading → uploaded (or → held).

Before anything is sent, the job is made to describe the file as it is now (a file that
changed since it was taken is taken anew), every input is proven to be the regular file
that was taken and checked to be media (``inbox/inputs.py``, ``inbox/media.py``),
``cvsyncd pause`` is read afresh, and the spend guard weighs the recording (``spend.py``:
a held backlog, a cap, too little credit make it ``held``, nothing uploaded). Then, per
input: ask for a signed URL, PUT the bytes through the proven descriptor, check on that
descriptor that nothing changed while they went, and record the file URL. A step
interrupted anywhere is redone from queued.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from cvsyncd import events as ev
from cvsyncd.cleanvoice.client import file_url_of
from cvsyncd.config import Folder
from cvsyncd.errors import JobError
from cvsyncd.failpoints import failpoint
from cvsyncd.inbox import inputs, media
from cvsyncd.jobs import ALL_FOLDERS, InputFile, Job, JobState, Store
from cvsyncd.pipeline import videoupload
from cvsyncd.pipeline.disposal import input_errors, input_place, open_input
from cvsyncd.pipeline.guard import SpendGuard
from cvsyncd.pipeline.runtime import Runtime, RuntimePart

S = JobState
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"})
PROGRESS_EVERY = 5.0
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


def held(store: Store, folder: Folder) -> bool:
    """Whether ``cvsyncd pause`` holds this folder's new work, as the store says now
    (read afresh: a pause must count from the moment the command returned)."""
    holds = store.holds()
    return ALL_FOLDERS in holds or folder.key in holds


class Uploads(RuntimePart):
    """The upload step of every job."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.log = structlog.get_logger("cvsyncd.pipeline")
        self.guard = SpendGuard(runtime)

    async def upload(self, job: Job, folder: Folder) -> None:
        job = await self._refresh_if_changed(job, folder)
        job = await self._probe(job, folder)
        job = await self._choose_video_upload(job, folder)
        if held(self.store, folder):
            return  # `cvsyncd pause` came in meanwhile: no upload starts after it
        # the spend guard, with nothing awaited between its check and the state change: two
        # uploads starting together are weighed one after the other (pipeline/guard.py),
        # and in one transaction with the state change, so that with the shared store
        # another site's check waits for this one's spend to count
        self.guard.refresh_balance()  # for the next ones: nothing waits for the answer
        with self.store.serialized():
            hold = self.guard.check(job, folder)
            if hold is None:
                job = self.store.transition(
                    job.id, S.QUEUED, S.UPLOADING, "uploading", facts=self.guard.spend_facts(job)
                )
        if hold is not None:
            self.guard.hold(job, hold)
            return
        failpoint("upload.started")
        log = self.log.bind(job=job.id, path=job.name)
        log.info(ev.JOB_UPLOADING, size=sum(i.size for i in job.inputs))
        if videoupload.audio_only(job) is not None:  # a video whose sound alone goes
            file_urls = {0: await self._upload_sound(job, folder)}
        else:
            file_urls = {
                n: await self._upload_input(job, folder, n) for n in range(len(job.inputs))
            }
        # the file URLs are kept with the state change: a crash before it uploads again
        self.store.transition(
            job.id,
            S.UPLOADING,
            S.UPLOADED,
            "uploaded",
            inputs={n: {"file_url": url} for n, url in file_urls.items()},
            attempts=0,
            error=None,
            progress=None,
            next_attempt_at=0,
        )
        failpoint("upload.done")
        log.info(ev.JOB_UPLOADED)

    async def _choose_video_upload(self, job: Job, folder: Folder) -> Job:
        """Decide whether a video goes whole or as its sound alone, and say why."""
        if not videoupload.is_video_job(job):
            return job
        previous = job.facts.get("video_upload")
        if isinstance(previous, dict) and previous.get("forced"):
            self.log.info(ev.JOB_VIDEO_UPLOAD, job=job.id, path=job.name, **previous)
            return job  # the sound alone did not work for this recording: whole, as said
        decision = await asyncio.to_thread(videoupload.choose, job, folder)
        self.log.info(ev.JOB_VIDEO_UPLOAD, job=job.id, path=job.name, **decision)
        if job.facts.get("video_upload") == decision:
            return job
        # stored with the move to uploading (or the hold), like the probe's duration
        return dataclasses.replace(job, facts={**job.facts, "video_upload": decision})

    async def _upload_sound(self, job: Job, folder: Folder) -> str:
        """Extract the video's sound to a temp file, upload that, remove it; return the
        uploaded file's URL (kept with the state change, as for any upload)."""
        decision = videoupload.audio_only(job)
        assert decision is not None
        try:
            extracted = await asyncio.to_thread(
                videoupload.extract, job, folder, self.config.daemon.state_dir, decision
            )
        except videoupload.avtools.ToolError as exc:
            # nothing was sent yet: the whole video goes at the next attempt, for nothing more
            decision = {"mode": "full", "reason": f"extracting the sound failed: {exc}"}
            facts = {**job.facts, "video_upload": {**decision, "forced": True}}
            self.store.update(job.id, job.state, None, facts=facts)
            raise JobError(
                f"the sound of {job.name} could not be extracted ({exc}); "
                "sending the whole video instead",
                retryable=True,
            ) from None
        failpoint("upload.extracted")
        try:
            size = extracted.stat().st_size
            name = upload_name(Path(job.name).with_suffix("." + decision["extension"]))
            signed = await self.client.request_upload_url(name)
            failpoint("upload.signed")
            with open(extracted, "rb") as source:
                await self.client.upload_file(
                    signed, source, size, on_progress=self._progress_writer(job, size)
                )
            failpoint("upload.sent")
            self.log.info(ev.JOB_SOUND_UPLOADED, job=job.id, size=size, video=job.inputs[0].size)
        finally:
            await asyncio.to_thread(extracted.unlink, missing_ok=True)
        return file_url_of(signed)

    async def _upload_input(self, job: Job, folder: Folder, position: int) -> str:
        """Upload one input as it was taken; return its file URL for the create-edit."""
        recorded = job.inputs[position]
        _, rel = input_place(folder, job, position)
        signed = await self.client.request_upload_url(upload_name(Path(rel)))
        failpoint("upload.signed")
        with open_input(folder, job, position) as source:
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
        return file_url_of(signed)

    def _progress_writer(self, job: Job, size: int | None = None) -> Any:
        last = [time.monotonic()]
        size = sum(i.size for i in job.inputs) if size is None else size

        def write(sent: int) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY:
                last[0] = now
                self.store.update(
                    job.id, S.UPLOADING, None, progress={"uploaded": sent, "size": size}
                )

        return write

    async def _probe(self, job: Job, folder: Folder) -> Job:
        """Check that every input is media, and note its duration, before paying for it.

        The duration is noted in the job returned, and stored with the state change that
        follows (the upload starting, or a hold): a pause in between measures it again."""
        durations = []
        for position, recorded in enumerate(job.inputs):

            def probe(position: int = position) -> Any:
                with open_input(folder, job, position) as source:
                    return media.probe_file(source)

            found = await asyncio.to_thread(probe)
            if found.problem:
                raise JobError(f"{recorded.rel_path}: {found.problem}")
            durations.append(found.duration)
        known = [d for d in durations if d]
        duration = max(known) if known else None
        if duration == job.facts.get("duration"):
            return job
        return dataclasses.replace(job, facts={**job.facts, "duration": duration})

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
            settling = f"{rel} is still being written; waiting for it to settle"
            with input_errors(folder, root, rel, settling):
                st, fingerprint = await asyncio.to_thread(inputs.fingerprint, root, rel)
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
        self.log.info(ev.JOB_INPUT_CHANGED, job=job.id, path=job.name)
        return self.store.update(
            job.id,
            job.state,
            "the input changed before upload; taking its new content",
            fingerprint=fingerprint,
        )
