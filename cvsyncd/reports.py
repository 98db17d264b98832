"""What ``cvsyncd status``, ``jobs`` and ``show`` report: built as data (for ``--json``),
then written as text for a person.

``status`` summarises: counts per state and per folder, the jobs that need the user, what
sets the pace right now (slots in use, the API's request budget, pauses, retries), the
jobs in progress with the next check and the expected end. It reads only what it prints.
Times are ISO 8601 in UTC, like the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TextIO

from cvsyncd.config import Config
from cvsyncd.jobs import ACTIVE, Job, JobState, iso_time
from cvsyncd.schedule import expected_seconds
from cvsyncd.store import ALL_FOLDERS, Store, lock_holder

S = JobState
NEED_YOU = (S.FAILED, S.NEEDS_ATTENTION, S.DUPLICATE)
WORKED_ON = tuple(s for s in S if s in ACTIVE and s is not S.QUEUED)  # "in progress"
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
    if every_job:
        report["jobs"] = [job_summary(j) for j in store.jobs()]
    return report


def in_order(counts: Mapping[JobState, int]) -> dict[str, int]:
    """Counts per state, in the order a job goes through them."""
    return {s.value: counts[s] for s in S if counts.get(s)}


def _folder_name(config: Config, key: str) -> str:
    return next((f.name for f in config.folders if f.key == key), key)


def print_status(report: Mapping[str, Any], out: TextIO) -> None:
    """``cvsyncd status`` as text."""
    if report["daemon_pid"]:
        running = f"running (pid {report['daemon_pid']})"
    elif report["process_pid"]:
        running = f"not running; a `cvsyncd process` run (pid {report['process_pid']}) is working"
    else:
        running = "not running"
    say(out, f"daemon:  {running}")
    say(out, f"config:  {report['config']}")
    say(out, f"state:   {report['state_dir']}")
    if report["paused"]:
        say(out, f"PAUSED:  {report['paused']}")
    for name, reason in report["held"].items():
        say(out, f"PAUSED by the operator ({name}): {reason}")
    for name, reason in report["folders_paused"].items():
        say(out, f"folder {name} paused: {reason}")
    say(out, f"jobs:    {counted(report['counts']) or 'none yet'}")
    if len(report["folders"]) > 1:
        width = max(len(name) for name in report["folders"])
        for name, per in report["folders"].items():
            say(out, f"  {name:<{width}}  {counted(per)}")
    if report["pace"]:
        _print_pace(report["pace"], out)
    if report["active"]:
        say(out, "in progress:")
        for job in report["active"]:
            say(out, f"  #{job['id']:<5} {job['state']:<11} {job['name']}{progress_words(job)}")
        if report["active_more"]:
            say(out, f"  … and {report['active_more']} more (cvsyncd status --all)")
    if report["need_you"]:
        say(out, "needs you:")
        for job in report["need_you"]:
            say(out, f"  #{job['id']:<5} {job['state']:<15} {job['name']}")
            if job["error"]:
                say(out, f"         {job['error']}")
        if report["need_you_more"]:
            say(out, f"  … and {report['need_you_more']} more (cvsyncd jobs --state failed …)")
    if report["not_taken"]:
        say(out, "not taken (fix these and they are taken):")
        for entry in report["not_taken"]:
            say(out, f"  {entry['path']}: {entry['reason']}")
    if report.get("jobs"):
        say(out, "every job:")
        for job in report["jobs"]:
            say(out, f"  #{job['id']:<5} {job['state']:<15} {job['name']}")


def _print_pace(pace: Mapping[str, Any], out: TextIO) -> None:
    uploads, edits = pace["uploads"], pace["edits"]
    say(
        out,
        f"pace:    {uploads['running']} of {uploads['limit']} uploads, "
        f"{edits['at_cleanvoice']} of {edits['limit']} edits at Cleanvoice; the API's request "
        f"budget allows {pace['recordings_per_minute']} recordings a minute at most",
    )
    for limit in pace["limits_now"]:
        say(out, f"         {limit}")


def progress_words(job: Mapping[str, Any]) -> str:
    """How far a job in progress is, in a few words (after two spaces), or ""."""
    p = job.get("progress") or {}
    parts = []
    if "uploaded" in p and p.get("size"):
        parts.append(f"{100 * p['uploaded'] // p['size']}% uploaded")
    elif p.get("status"):
        pct = f" {p['percent']:g}%" if p.get("percent") is not None else ""
        parts.append(f"{p['status']}{pct}")
    if job.get("expected_done_at"):
        parts.append(f"expected done {job['expected_done_at']}")
    if job.get("next_check_at") and job["state"] == "processing":
        parts.append(f"next check {job['next_check_at']}")
    if job.get("error"):
        parts.append(f"will try again: {job['error']}")
    return "  " + ", ".join(parts) if parts else ""


def counted(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {state.replace('_', ' ')}" for state, n in counts.items())


def print_job(described: Mapping[str, Any], out: TextIO) -> None:
    """``cvsyncd show`` as text: no JSON, nothing that is not known."""
    say(out, f"job {described['id']}: {described['name']} — {described['state']}")
    rows: list[tuple[str, str]] = [("folder", described["folder"])]
    options = ", ".join(f"{k} = {_toml(v)}" for k, v in described["options"].items())
    preset = described["facts"].get("preset")
    rows.append(("preset", f"{preset or 'inline'}" + (f" ({options})" if options else "")))
    for item in described["inputs"]:
        rows.append(
            ("input", f"{item['path']} ({_size(item['size'])}, sha256 {item['sha256'][:12]}…)")
        )
    for key, label in (
        ("edit_id", "edit"),
        ("created_at", "taken"),
        ("submitted_at", "submitted"),
        ("finished_at", "finished"),
        ("next_attempt_at", "next try"),
        ("disposed_to", "input moved to"),
        ("error", "why"),
    ):
        if described.get(key):
            rows.append((label, str(described[key])))
    if described.get("attempts"):
        rows.append(("attempts", str(described["attempts"])))
    where = described["facts"].get("input_at")
    if where and described["state"] == "failed":
        rows.append(("input is at", where))
    for output in described["outputs"]:
        if output.get("written") and not output.get("skip"):
            rows.append(("output", output["path"]))
    if described.get("statistics"):
        stats = ", ".join(
            f"{k.lower().replace('_', ' ')} {v}" for k, v in described["statistics"].items()
        )
        rows.append(("edits made", stats))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        say(out, f"{label + ':':<{width + 1}} {value}")
    say(out, "history:")
    for event in described["history"]:
        say(out, f"  {event['at']}  {event['state']:<15} {event['message'] or ''}".rstrip())


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def _size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB"):
        if value < 1000:
            return f"{value:.0f} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def say(out: TextIO, text: str) -> None:
    print(text, file=out)
