"""Operator commands on jobs: retry, release, forget, show.

They work on the state database directly (a running daemon sees the change on its next
turn, within a second) and return what happened per job; ``cli`` turns that into words.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvsyncd.config import Config, Folder
from cvsyncd.errors import StoreError, UsageError
from cvsyncd.jobs import ALL_FOLDERS, RETRYABLE, TERMINAL, Job, JobState, Store, iso_time
from cvsyncd.pipeline.disposal import error_note
from cvsyncd.pipeline.outcomes import can_resume
from cvsyncd.pipeline.spend import NEVER, release_facts
from cvsyncd.redact import scrub, shown_options


@dataclass(frozen=True)
class Outcome:
    job_id: int
    ok: bool
    message: str


def folder_of(config: Config, job: Job) -> Folder | None:
    return next((f for f in config.folders if f.key == job.folder), None)


def retry_jobs(
    config: Config, store: Store, ids: Iterable[int], states: Iterable[JobState] = ()
) -> list[Outcome]:
    """Send jobs back to the queue: those named in ``ids`` and all jobs in ``states``."""
    wanted = list(dict.fromkeys([*ids, *(j.id for j in store.jobs(list(states)))]))
    outcomes = []
    for job_id in wanted:
        job = store.get(job_id)
        if job is None:
            outcomes.append(Outcome(job_id, False, f"there is no job {job_id}"))
            continue
        if job.state not in RETRYABLE:
            outcomes.append(
                Outcome(
                    job_id,
                    False,
                    f"job {job_id} is {job.state}; only failed, "
                    "needs_attention and duplicate jobs can be retried",
                )
            )
            continue
        resumable = job.state is JobState.FAILED and can_resume(config, job)
        newer = store.newer_job_for_name(job.folder, job.name, job.id)
        if newer is not None and not job.facts.get("input_at") and not resumable:
            # the file under this name is a later recording now: retrying this job would
            # upload it and bill it a second time, beside the job that already has it (a
            # job that fetches its edit again reads only the content it took: no risk)
            outcomes.append(
                Outcome(
                    job_id,
                    False,
                    f"job {job_id} was not retried: the file {job.name} is now job "
                    f"{newer.id} ({newer.state}), a later recording under the same name",
                )
            )
            continue
        try:
            if resumable:
                store.resume_edit(job_id, "its edit's results fetched again by cvsyncd retry")
                message = (
                    f"job {job_id} ({job.name}) will fetch the results of its edit "
                    f"{job.edit_id} again; it is not submitted (or paid for) again"
                )
            else:
                store.requeue(job_id, "queued again by cvsyncd retry")
                warning = ""
                if job.state is JobState.NEEDS_ATTENTION:
                    warning = " (if Cleanvoice did create the first edit, it may be billed twice)"
                message = (
                    f"job {job_id} ({job.name}) is queued again and "
                    f"will be uploaded and submitted anew{warning}"
                )
        except StoreError as exc:
            outcomes.append(Outcome(job_id, False, str(exc)))
            continue
        _remove_error_note(config, job)
        outcomes.append(Outcome(job_id, True, message))
    return outcomes


def release_jobs(
    config: Config,
    store: Store,
    ids: Iterable[int],
    folders: Iterable[str] = (),
    every: bool = False,
) -> list[Outcome]:
    """Queue held jobs now: those named in ``ids``, the held jobs of ``folders`` (by name or
    inbox), or every held job. The kind of hold each was released from is remembered
    (``spend.release_facts``): the same backlog or cap does not hold it again."""
    keys = []
    for wanted in folders:
        folder = next((f for f in config.folders if wanted in (f.name, str(f.inbox), f.key)), None)
        if folder is None:
            names = ", ".join(f.name for f in config.folders)
            raise UsageError(f"there is no folder {wanted!r} in the config (folders: {names})")
        keys.append(folder.key)
    chosen = list(ids)
    if every or keys:
        chosen += [job_id for job_id, _, _ in store.held_jobs(keys)]
    outcomes = []
    for job_id in dict.fromkeys(chosen):
        job = store.get(job_id)
        if job is None:
            outcomes.append(Outcome(job_id, False, f"there is no job {job_id}"))
            continue
        if job.state is not JobState.HELD:
            outcomes.append(
                Outcome(job_id, False, f"job {job_id} is {job.state}, not held; nothing to release")
            )
            continue
        kind = job.facts.get("hold", {}).get("kind", "hold")
        try:
            store.transition(
                job_id,
                JobState.HELD,
                JobState.QUEUED,
                f"released by cvsyncd release (from its {kind.replace('_', ' ')} hold)",
                facts=release_facts(job.facts),
                error=None,
                next_attempt_at=0,
            )
        except StoreError as exc:
            outcomes.append(Outcome(job_id, False, str(exc)))
            continue
        outcomes.append(
            Outcome(job_id, True, f"job {job_id} ({job.name}) released: it is queued for upload")
        )
    return outcomes


def forget_jobs(config: Config, store: Store, ids: Iterable[int]) -> list[Outcome]:
    """Delete finished jobs, so that the same input would be taken as new."""
    outcomes = []
    for job_id in ids:
        job = store.get(job_id)
        if job is None:
            outcomes.append(Outcome(job_id, False, f"there is no job {job_id}"))
            continue
        if job.state not in TERMINAL:
            outcomes.append(
                Outcome(
                    job_id,
                    False,
                    f"job {job_id} is {job.state}: it is still "
                    "being worked on; forget it once it is finished",
                )
            )
            continue
        store.delete_job(job_id)
        store.bump_forget_generation()  # a running daemon rescans
        hint = ""
        folder = folder_of(config, job)
        if folder is not None:
            where = job.disposed_to or job.facts.get("input_at")
            if where and Path(where).exists():
                hint = (
                    f"; its input is at {where} — move it back into "
                    f"{folder.inbox} to have it processed again"
                )
            elif (folder.inbox / job.name).exists():
                hint = "; its input is still in the inbox and will be taken again"
        outcomes.append(Outcome(job_id, True, f"job {job_id} ({job.name}) forgotten{hint}"))
    return outcomes


def render_jobs(config: Config, store: Store, ids: Iterable[int]) -> list[Outcome]:
    """Write done jobs' derived files again from their stored results (no API call)."""
    from cvsyncd.outbox.plan import written_paths
    from cvsyncd.pipeline.delivery import render_again

    outcomes = []
    for job_id in ids:
        job = store.get(job_id)
        folder = folder_of(config, job) if job else None
        if job is None:
            outcomes.append(Outcome(job_id, False, f"there is no job {job_id}"))
        elif job.state is not JobState.DONE or not job.result or not job.outputs:
            outcomes.append(
                Outcome(
                    job_id,
                    False,
                    f"job {job_id} is {job.state}; only done jobs have a result to render from",
                )
            )
        elif folder is None:
            outcomes.append(
                Outcome(
                    job_id, False, f"job {job_id}'s folder {job.folder} is no longer in the config"
                )
            )
        else:
            plan = render_again(job, folder)
            store.update(job_id, JobState.DONE, "outputs rendered again", outputs=plan)
            names = ", ".join(Path(p).name for p in written_paths(plan))
            outcomes.append(Outcome(job_id, True, f"job {job_id} ({job.name}): {names}"))
    return outcomes


def hold(
    config: Config,
    store: Store,
    folder_name: str | None,
    reason: str | None,
    *,
    resume: bool = False,
) -> Outcome:
    """``cvsyncd pause``/``resume``: hold back (or let go) new uploads and submissions of one
    folder or all. Edits already at Cleanvoice are still polled and their results written."""
    key, label = ALL_FOLDERS, "all folders"
    if folder_name:
        folder = next((f for f in config.folders if folder_name in (f.name, str(f.inbox))), None)
        if folder is None:
            names = ", ".join(f.name for f in config.folders)
            return Outcome(
                0, False, f"there is no folder {folder_name!r}; the folders are: {names}"
            )
        key, label = folder.key, f"folder {folder.name}"
    if resume:
        store.set_hold(key, None)
        still = store.holds()
        note = (
            " (all folders are still paused: `cvsyncd resume` without a folder)"
            if ALL_FOLDERS in still and key != ALL_FOLDERS
            else ""
        )
        return Outcome(0, True, f"{label}: new work resumes{note}")
    text = reason or "paused with cvsyncd pause"
    store.set_hold(key, f"{text} ({time.strftime('%Y-%m-%d %H:%M')})")
    return Outcome(
        0,
        True,
        f"{label}: no new uploads or submissions until `cvsyncd resume`; "
        "edits already at Cleanvoice finish",
    )


def describe_job(config: Config, store: Store, job_id: int) -> dict[str, Any] | None:
    """Everything known about a job, as data (no secrets are stored; text is scrubbed anyway)."""
    job = store.get(job_id)
    if job is None:
        return None
    result = job.result or {}
    described: dict[str, Any] = {
        "id": job.id,
        "state": job.state.value,
        "folder": job.folder,
        "name": job.name,
        "fingerprint": job.fingerprint,
        "inputs": [
            {
                "path": i.rel_path,
                "size": i.size,
                "mtime_ns": i.mtime_ns,
                "sha256": i.fingerprint,
                "uploaded_as": i.file_url,
            }
            for i in job.inputs
        ],
        "options": shown_options(job.options),
        "edit_id": job.edit_id,
        "attempts": job.attempts,
        # a job held until someone releases it has no next try to show
        "next_attempt_at": iso_time(job.next_attempt_at)
        if job.next_attempt_at and job.next_attempt_at < NEVER
        else None,
        "progress": job.progress,
        "error": job.error,
        "outputs": [dict(o) for o in job.outputs],
        "disposed_to": job.disposed_to,
        "facts": dict(job.facts),
        "statistics": result.get("statistics"),
        "result_keys": sorted(k for k, v in result.items() if v not in (None, [], {}, "")),
        "created_at": iso_time(job.created_at),
        "updated_at": iso_time(job.updated_at),
        "submitted_at": iso_time(job.submitted_at),
        "finished_at": iso_time(job.finished_at),
        "history": [
            {"at": iso_time(at), "state": state.value, "message": message}
            for at, state, message in store.events(job_id)
        ],
    }
    return _scrubbed(described)


def _remove_error_note(config: Config, job: Job) -> None:
    """A retried job's old ``<name>.error.txt`` (ours) would only mislead."""
    folder = folder_of(config, job)
    if folder is None:
        return
    where = Path(job.facts.get("input_at") or folder.failed_dir / job.name)
    with contextlib.suppress(OSError):
        error_note(where).unlink()


def _scrubbed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    return scrub(value) if isinstance(value, str) else value
