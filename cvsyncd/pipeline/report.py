"""What ``cvsyncd status`` and ``jobs`` report, built as data: the commands print it as
text for a person (``cli/status.py``) or as JSON.

``status`` summarises: counts per state and per folder, the jobs that need the user, what
sets the pace right now (slots in use, the API's request budget, pauses, retries), the
jobs in progress with the next check and the expected end. It reads only what it prints.
Times are ISO 8601 in UTC, like the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cvsyncd.config import Config
from cvsyncd.jobs import ACTIVE, ALL_FOLDERS, Job, JobState, Store, iso_time, lock_holder
from cvsyncd.pipeline.schedule import expected_seconds
from cvsyncd.pipeline.spend import held_summary

S = JobState
NEED_YOU = (S.FAILED, S.NEEDS_ATTENTION, S.DUPLICATE)
# "in progress" (held jobs wait for the user or a budget: listed apart)
WORKED_ON = tuple(s for s in S if s in ACTIVE and s not in (S.QUEUED, S.HELD))
SHOWN = 10  # active jobs and jobs that need the user, in the summary


def job_summary(job: Job) -> dict[str, Any]:
    """The facts of one job as ``jobs --json`` shows them (no secrets: none are stored)."""
    return {
        "id": job.id,
        "state": job.state.value,
        "folder": job.folder,
        "name": job.name,
        "inputs": [i.rel_path for i in job.inputs],
        "edit_id": job.edit_id,
        "error": job.error,
        "attempts": job.attempts,
        "progress": job.progress,
        "outputs": [o["path"] for o in job.outputs if o.get("written")],
        "disposed_to": job.disposed_to,
        "duplicate_of": job.facts.get("duplicate_of"),
        "created_at": iso_time(job.created_at),
        "updated_at": iso_time(job.updated_at),
        "finished_at": iso_time(job.finished_at),
        "hold": job.facts.get("hold"),
        "site": job.site,
    }


def active_summary(config: Config, job: Job) -> dict[str, Any]:
    """A job in progress: its summary, when it is looked at next, when it should end."""
    summary = job_summary(job)
    if job.next_attempt_at:
        summary["next_check_at"] = iso_time(job.next_attempt_at)
    expected = expected_seconds(config, job.facts.get("duration"))
    if job.state is S.PROCESSING and job.submitted_at and expected:
        summary["expected_done_at"] = iso_time(job.submitted_at + expected)
    return summary


def pace(config: Config, store: Store, counts: Mapping[JobState, int]) -> dict[str, Any]:
    """What limits how fast work goes right now, as figures and as sentences."""
    limits = config.daemon
    per_minute = config.cleanvoice.submit_requests_per_minute
    uploads = counts.get(S.UPLOADING, 0) + counts.get(S.UPLOADED, 0)
    edits = counts.get(S.SUBMITTING, 0) + counts.get(S.PROCESSING, 0)
    retrying = store.count_retrying()
    queued = counts.get(S.QUEUED, 0)
    now: list[str] = []
    if uploads >= limits.max_concurrent_uploads and queued:
        now.append(
            f"all {limits.max_concurrent_uploads} upload slots are busy "
            "(max_concurrent_uploads); the queue waits for them"
        )
    if edits >= limits.max_active_edits:
        now.append(
            f"{edits} edits are at Cleanvoice, the most at once (max_active_edits); "
            "the next waits for one to finish"
        )
    if retrying:
        now.append(f"{retrying} job(s) wait to try a step again after a problem")
    return {
        "uploads": {"running": uploads, "limit": limits.max_concurrent_uploads},
        "edits": {"at_cleanvoice": edits, "limit": limits.max_active_edits},
        "requests_per_minute": per_minute,
        # each recording costs two of these: the upload URL and the create-edit
        "recordings_per_minute": per_minute // 2,
        "retrying": retrying,
        "limits_now": now,
    }


def status_report(
    config: Config, store: Store | None, *, every_job: bool = False
) -> dict[str, Any]:
    """Everything ``cvsyncd status`` says, as data."""
    holder = lock_holder(config.daemon.state_dir)
    report: dict[str, Any] = {
        "config": str(config.path),
        "state_dir": str(config.daemon.state_dir),
        "daemon_pid": holder[0] if holder and holder[1] == "daemon" else None,
        "process_pid": holder[0] if holder and holder[1] == "process" else None,
        "paused": None,
        "held": {},
        "folders_paused": {},
        "not_taken": [],
        "counts": {},
        "folders": {},
        "pace": {},
        "active": [],
        "active_more": 0,
        "need_you": [],
        "need_you_more": 0,
        "held_jobs": [],  # held by the spend guard, grouped by why
        "held_list": [],
        "held_more": 0,
    }
    if store is None:
        return report
    report["paused"] = store.account_pause()
    report["held"] = {
        ("all folders" if k == ALL_FOLDERS else _folder_name(config, k)): v
        for k, v in store.holds().items()
    }
    if holder is not None and holder[1] == "daemon":
        report["folders_paused"] = store.unavailable_folders()
        report["not_taken"] = store.refused_entries()
    counts = store.count_by_state()
    report["counts"] = in_order(counts)
    report["folders"] = {
        _folder_name(config, key): in_order(per)
        for key, per in sorted(store.count_by_folder().items())
    }
    report["pace"] = pace(config, store, counts)
    active_total = sum(counts.get(s, 0) for s in WORKED_ON)
    limit = None if every_job else SHOWN
    report["active"] = [active_summary(config, j) for j in store.jobs(WORKED_ON, limit=limit)]
    report["active_more"] = active_total - len(report["active"])
    need_total = sum(counts.get(s, 0) for s in NEED_YOU)
    report["need_you"] = [job_summary(j) for j in store.jobs(NEED_YOU, limit=limit)]
    report["need_you_more"] = need_total - len(report["need_you"])
    if counts.get(S.HELD):
        report["held_jobs"] = held_summary(config, store)
        report["held_list"] = [job_summary(j) for j in store.jobs([S.HELD], limit=limit)]
        report["held_more"] = counts[S.HELD] - len(report["held_list"])
    if every_job:
        report["jobs"] = [job_summary(j) for j in store.jobs()]
    return report


def in_order(counts: Mapping[JobState, int]) -> dict[str, int]:
    """Counts per state, in the order a job goes through them."""
    return {s.value: counts[s] for s in S if counts.get(s)}


def _folder_name(config: Config, key: str) -> str:
    return next((f.name for f in config.folders if f.key == key), key)
