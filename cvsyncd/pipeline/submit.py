"""The submit and poll steps: uploaded → submitting → processing → fetching.

Submit writes its intent before it sends the create-edit request and the edit id after
(docs/reliability.md, promise 5): a crash or a lost answer in between leaves the job
*ambiguous*, never resubmitted on its own. ``cvsyncd pause`` is read afresh just before
the intent. Poll asks Cleanvoice on the schedule of ``schedule.py``; a finished edit's
result is stored (without signed URLs) and kept live for the fetch that follows.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

import structlog

from cvsyncd import events as ev
from cvsyncd.config import Config, Folder, overrides, presets
from cvsyncd.errors import ConfigError, EditFailed, JobError, PermanentApiError
from cvsyncd.failpoints import failpoint
from cvsyncd.inbox import inputs
from cvsyncd.jobs import Job, JobState, JsonText
from cvsyncd.outbox.plan import redact_result
from cvsyncd.pipeline import schedule, videoupload
from cvsyncd.pipeline.delivery import Delivery
from cvsyncd.pipeline.disposal import input_place
from cvsyncd.pipeline.runtime import Runtime, RuntimePart
from cvsyncd.pipeline.upload import held
from cvsyncd.redact import REDACTED, URL_OPTIONS, redact_url

S = JobState
[SIGNED_URL] = URL_OPTIONS  # the one option whose value is a credential


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


class Submissions(RuntimePart):
    """The submit and poll steps of every job."""

    def __init__(self, runtime: Runtime, delivery: Delivery):
        self.runtime = runtime
        self.delivery = delivery
        self.log = structlog.get_logger("cvsyncd.pipeline")

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
        if held(self.store, folder):
            return  # `cvsyncd pause` came in meanwhile: no submission starts after it
        # write-ahead intent: from here until the edit id is stored, the outcome is unknown
        job = self.store.transition(job.id, S.UPLOADED, S.SUBMITTING, "creating the edit")
        failpoint("submit.intent")
        self.log.info(ev.JOB_SUBMITTING, job=job.id, path=job.name)
        options = with_signed_url(self.config, folder, job, dict(job.options))
        if videoupload.audio_only(job):
            options["video"] = False  # the sound alone was uploaded (pipeline/videoupload.py)
        template_id = options.pop(presets.TEMPLATE_KEY, None)
        for key in presets.LOCAL_KEYS:
            options.pop(key, None)  # cvsyncd's own keys are never sent
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
        self.runtime.created_edits[job.id] = edit_id
        try:
            record_edit(self.runtime, job, edit_id)
        except BaseException:
            # the edit exists and is billed: its id must not be lost with this write
            self.log.error(ev.JOB_EDIT_UNRECORDED, job=job.id, path=job.name, edit_id=edit_id)
            raise
        failpoint("submit.done")
        self.runtime.pause.submitted()
        self.log.info(ev.JOB_SUBMITTED, job=job.id, path=job.name, edit_id=edit_id)

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
            self.log.info(ev.JOB_EDIT_FINISHED, job=job.id, path=job.name, edit_id=job.edit_id)
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
                    ev.JOB_SLOW,
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


def record_edit(runtime: Runtime, job: Job, edit_id: str) -> Job:
    """Store the edit a create made for ``job`` (in ``submitting``): it goes on to be
    polled. Once stored, the edit id is no longer kept in memory only."""
    now = time.time()
    config = runtime.config
    recorded = runtime.store.transition(
        job.id,
        S.SUBMITTING,
        S.PROCESSING,
        f"edit {edit_id} created",
        edit_id=edit_id,
        submitted_at=now,
        attempts=0,
        error=None,
        next_attempt_at=now + schedule.first_poll_delay(config, job.facts.get("duration")),
        # a new edit: whether an earlier one's result was usable no longer matters
        facts={**{k: v for k, v in job.facts.items() if k != "edit_unusable"}, "polls": 0},
    )
    runtime.created_edits.pop(job.id, None)
    return recorded


def with_signed_url(
    config: Config, folder: Folder, job: Job, options: dict[str, Any]
) -> dict[str, Any]:
    """The job's options with its preset's ``signed_url`` whole again, for the request.

    The store keeps that URL without its query (a signature is a credential), so the
    whole one is read from the config when the edit is created: the same URL as when the
    recording was taken, or the job waits (saying why) until it is that URL again.
    """
    stored = options.get(SIGNED_URL)
    if not isinstance(stored, str) or REDACTED not in stored:
        return options  # none, or a job stored before the query was kept out
    name = PurePosixPath(job.name)
    rel_dir = name if job.facts.get("session") else name.parent
    try:
        current = overrides.effective_options(config, folder, rel_dir).get(SIGNED_URL)
    except ConfigError as exc:
        raise JobError(f"{exc}; the job waits until it is fixed", retryable=True) from None
    if isinstance(current, str) and redact_url(current) == stored:
        return {**options, SIGNED_URL: current}
    raise JobError(
        f"the signed_url of {job.name}'s preset is no longer {stored} in {config.path}. Its "
        "signature is never stored, so the one of that time cannot be sent: put that URL "
        f"back to go on, or run `cvsyncd forget -c {config.path} {job.id}` to have the "
        "recording taken again with the new one",
        retryable=True,
    )
