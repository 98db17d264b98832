"""What each page of the dashboard shows, read from the store as plain data.

The templates only lay these out. Everything here is a few indexed queries: the overview
reads counts and at most SHOWN jobs of each kind, the jobs page one page of summaries by
id (keyset paging, never an OFFSET over all jobs), a job page one job.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cvsyncd.config import Config, Folder
from cvsyncd.jobs import ALL_FOLDERS, RETRYABLE, TERMINAL, Job, JobState, Listing, Store
from cvsyncd.pipeline.actions import describe_job, folder_of
from cvsyncd.pipeline.report import NEED_YOU, WORKED_ON, in_order
from cvsyncd.pipeline.spend import held_summary

S = JobState
SHOWN = 20  # jobs in progress, needing you, recent: on the overview
PAGE = 50  # jobs per page of the jobs list
RECENT = 10


@dataclass(frozen=True)
class FolderView:
    name: str
    inbox: str
    outbox: str
    state: str  # watching | paused | unavailable
    why: str


def folders(
    config: Config, store: Store, unavailable: Callable[[str], str | None]
) -> list[FolderView]:
    holds = store.holds()
    out = []
    for folder in config.folders:
        problem = unavailable(folder.key)
        hold = holds.get(folder.key) or holds.get(ALL_FOLDERS)
        if problem:
            state, why = "unavailable", problem
        elif hold:
            state, why = "paused", hold
        else:
            state, why = "watching", ""
        out.append(FolderView(folder.name, str(folder.inbox), str(folder.outbox), state, why))
    return out


def progress_text(job: Job) -> tuple[str, int | None]:
    """What a job in progress is doing, and a percentage when one is known."""
    p = job.progress or {}
    if job.state is S.UPLOADING and p.get("size"):
        percent = int(100 * p.get("uploaded", 0) / max(p["size"], 1))
        return f"uploading: {percent} %", percent
    if job.state is S.PROCESSING:
        told = p.get("percent")
        status = str(p.get("status") or "processing").lower()
        if isinstance(told, int | float):
            return f"Cleanvoice {status}: {int(told)} %", int(told)
        return f"Cleanvoice {status}", None
    return str(job.state), None


def job_row(job: Job, config: Config) -> dict[str, Any]:
    text, percent = progress_text(job)
    # with the shared store the page lists every site's jobs: another site's folder is
    # shown by its key and its site's name
    elsewhere = config.store is not None and job.site != config.store.site
    folder = None if elsewhere else folder_of(config, job)
    return {
        "id": job.id,
        "state": job.state.value,
        "name": job.name,
        "folder": (folder.name if folder else job.folder) + (f" @ {job.site}" if elsewhere else ""),
        "error": job.error,
        "progress": text,
        "percent": percent,
        "retryable": job.state in RETRYABLE,
        "forgettable": job.state in TERMINAL,
        "releasable": job.state is S.HELD,
        "hold": hold_reason(job.facts),
        "updated": _when(job.updated_at),
    }


def hold_reason(facts: Mapping[str, Any]) -> str:
    """Why a held job waits, in the spend guard's words (pipeline/spend.py)."""
    hold = facts.get("hold")
    return str(hold.get("reason") or hold.get("kind") or "") if isinstance(hold, dict) else ""


def overview(
    config: Config,
    store: Store,
    unavailable: Callable[[str], str | None],
    credit: str | None,
) -> dict[str, Any]:
    counts = store.count_by_state()

    def rows(states: Sequence[JobState]) -> list[dict[str, Any]]:
        # only states that have jobs: a state with none would cost a walk of the id index
        present = [s for s in states if counts.get(s)]
        return [job_row(j, config) for j in store.jobs(present, limit=SHOWN)] if present else []

    held_total = counts.get(S.HELD, 0)
    return {
        "folders": folders(config, store, unavailable),
        "all_paused": ALL_FOLDERS in store.holds(),
        "account_pause": store.account_pause(),
        "counts": in_order(counts),
        "total": sum(counts.values()),
        "active": rows(WORKED_ON),
        "queued": counts.get(S.QUEUED, 0),
        "need_you": rows(NEED_YOU),
        "need_you_total": sum(counts.get(s, 0) for s in NEED_YOU),
        "held": rows([S.HELD]),
        "held_total": held_total,
        "held_why": [g["words"] for g in held_summary(config, store)] if held_total else [],
        "recent": [job_row(j, config) for j in store.jobs(limit=RECENT)],
        "credit": credit,
    }


def jobs_page(
    config: Config,
    store: Store,
    states: Sequence[str],
    folder: str | None,
    before: int | None,
) -> dict[str, Any]:
    """One page of the jobs list, newest first, filtered by states and a folder's name."""
    wanted = tuple(S(s) for s in states if s in S._value2member_map_)
    chosen = next((f for f in config.folders if f.name == folder), None)
    listing = Listing(
        states=wanted,
        folders=(chosen.key,) if chosen else (),
        before=before,
        limit=PAGE + 1,
    )
    names = {f.key: f.name for f in config.folders}
    rows = []
    for text in store.summaries_json(listing):
        item = json.loads(text)
        item["folder"] = names.get(item["folder"], item["folder"])
        rows.append(item)
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return {
        "rows": rows,
        "older": rows[-1]["id"] if more and rows else None,
        "states": [s.value for s in wanted],
        "folder": chosen.name if chosen else "",
        "all_states": [s.value for s in S],
        "all_folders": [f.name for f in config.folders],
        "before": before,
    }


ADVICE = {
    S.HELD: (
        "Nothing of this recording was uploaded yet: the spend guard keeps it back (the "
        "reason is above). Release it to have it processed now, the same as `cvsyncd "
        "release`; a cap that held it lets it go by itself when its period turns."
    ),
    S.FAILED: (
        "Cleanvoice could not process this recording, or it could not be read. The input "
        "was set aside in the folder's failed place, next to a .error.txt saying why. Fix "
        "the cause, then Retry."
    ),
    S.NEEDS_ATTENTION: (
        "The request that creates the edit was sent, but its answer never came: Cleanvoice "
        "may or may not have started (and billed) it. Look at your Cleanvoice dashboard. If "
        "the edit is not there, Retry submits it again; if it is, Forget this job."
    ),
    S.DUPLICATE: (
        "The same recording with the same options was already processed: its results are "
        "with the earlier job. Retry processes it anew (and is billed again)."
    ),
}


def job_page(config: Config, store: Store, job_id: int) -> dict[str, Any] | None:
    described = describe_job(config, store, job_id)
    if described is None:
        return None
    state = S(described["state"])
    folder = next((f for f in config.folders if f.key == described["folder"]), None)
    outputs = [
        {"n": n, "name": _relative(o.get("path", ""), folder)}
        for n, o in enumerate(o for o in described["outputs"] if o.get("written"))
    ]
    preset = folder.preset if folder else None
    job = store.get(job_id)
    return {
        "progress": progress_text(job)[0] if job else "",
        "job": described,
        "folder": folder.name if folder else described["folder"],
        "preset": preset or "(inline)",
        "options": ", ".join(f"{k} = {json.dumps(v)}" for k, v in described["options"].items()),
        "outputs": outputs,
        "advice": ADVICE.get(state, ""),
        "hold": hold_reason(described["facts"]),
        "releasable": state is S.HELD,
        "retryable": state in RETRYABLE,
        "forgettable": state in TERMINAL,
    }


def written_outputs(job: Job) -> list[str]:
    """The paths of the job's outputs that were written, in the order the page lists them."""
    return [str(o["path"]) for o in job.outputs if o.get("written") and o.get("path")]


def usage(config: Config, store: Store) -> dict[str, Any]:
    """Hours of audio per folder and month from the usage ledger (the done jobs, by the
    local month they finished in, as ``cvsyncd usage`` counts them), and an SVG bar chart."""
    names = {f.key: f.name for f in config.folders}
    hours: dict[tuple[str, str], float] = {}
    jobs: dict[str, int] = {}
    unknown: dict[str, int] = {}
    credits: dict[str, float] = {}
    for entry in store.usage(0.0, float(2**40)):
        name = names.get(entry.folder, entry.folder)
        month = datetime.fromtimestamp(entry.finished_at).strftime("%Y-%m")
        hours[(name, month)] = hours.get((name, month), 0.0) + (entry.seconds or 0.0) / 3600
        jobs[month] = jobs.get(month, 0) + 1
        if entry.seconds is None:
            unknown[month] = unknown.get(month, 0) + 1
        if entry.credits is not None:
            credits[month] = credits.get(month, 0.0) + entry.credits
    months = sorted(jobs)
    folder_names = sorted({name for name, _ in hours})
    table = [
        {
            "month": m,
            "cells": [round(hours.get((f, m), 0.0), 3) for f in folder_names],
            "total": round(sum(hours.get((f, m), 0.0) for f in folder_names), 3),
            "jobs": jobs[m],
            "unknown": unknown.get(m, 0),
            "credits": round(credits[m], 3) if m in credits else None,
        }
        for m in months
    ]
    return {"folders": folder_names, "table": table, "chart": chart(months, folder_names, hours)}


def chart(
    months: Sequence[str], folder_names: Sequence[str], hours: dict[tuple[str, str], float]
) -> dict[str, Any]:
    """Geometry of a stacked bar chart (one bar per month, one colour per folder), for
    the template to draw as inline SVG (no script, no styles beyond classes)."""
    width, height, pad = 640, 220, 30
    totals = [sum(hours.get((f, m), 0.0) for f in folder_names) for m in months]
    top = max(totals, default=0.0) or 1.0
    slot = (width - pad) / max(len(months), 1)
    bars = []
    for i, month in enumerate(months):
        y = float(height - pad)
        for j, name in enumerate(folder_names):
            value = hours.get((name, month), 0.0)
            h = (height - 2 * pad) * value / top
            y -= h
            bars.append(
                {
                    "x": round(pad + i * slot + slot * 0.15, 1),
                    "y": round(y, 1),
                    "w": round(slot * 0.7, 1),
                    "h": round(h, 1),
                    "series": j % 6,
                    "title": f"{name}, {month}: {value:.2f} h",
                }
            )
    labels = [{"x": round(pad + i * slot + slot / 2, 1), "text": m} for i, m in enumerate(months)]
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "labels": labels,
        "top": f"{top:.3g} h",
        "base": height - pad,
        "legend": [{"name": n, "series": j % 6} for j, n in enumerate(folder_names)],
    }


def _relative(path: str, folder: Folder | None) -> str:
    if folder is not None and path.startswith(str(folder.outbox) + "/"):
        return path[len(str(folder.outbox)) + 1 :]
    return path.rsplit("/", 1)[-1]


def _when(at: float | None) -> str:
    if not at:
        return ""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


def age_seconds(since: float | None, now: float | None = None) -> float:
    return 0.0 if since is None else max(0.0, (time.time() if now is None else now) - since)
