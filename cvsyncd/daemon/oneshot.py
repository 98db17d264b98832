"""``cvsyncd process FILE…``: the daemon's pipeline, once, in the foreground.

For scripts and cron. The files become jobs in the same state database as the daemon's,
so the same recording is never paid for twice, whoever takes it. If a daemon is running,
it does the work and this command only waits and reports; otherwise this command runs
the pipeline itself (without watching any folder) until its jobs are finished.

A file inside a configured inbox is processed with that folder's settings (and disposed
of per its ``after``); any other file is processed with the first folder's settings,
written to its outbox, and never moved or deleted.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cvsyncd.cleanvoice.client import client_for
from cvsyncd.config import Config, Folder
from cvsyncd.daemon.stores import open_store, share_budget
from cvsyncd.errors import UsageError
from cvsyncd.inbox import inputs
from cvsyncd.jobs import TERMINAL, InputFile, Job, JobState, Store, daemon_pid
from cvsyncd.pipeline.runtime import Runtime
from cvsyncd.pipeline.scheduler import Pipeline

POLL_SECONDS = 0.5
Report = Callable[[str], None]


class ProcessError(UsageError):
    """A file or preset given to ``cvsyncd process`` cannot be used (exit code 2)."""


def folder_for_file(config: Config, path: Path) -> tuple[Folder, bool]:
    """The folder a file belongs to, and whether it lies in that folder's inbox."""
    for folder in config.folders:
        if folder.inbox in path.parents:
            return folder, True
    return config.folders[0], False


async def process_files(
    config: Config, api_key: str, paths: Sequence[Path], preset: str | None, report: Report
) -> list[Job]:
    """Process ``paths`` to the end; return their jobs in their final states."""
    if preset is not None and preset not in config.presets:
        names = ", ".join(config.presets) or "none are defined"
        raise ProcessError(f"there is no preset named {preset!r} (presets: {names})")
    running = daemon_pid(config.daemon.state_dir)
    store = open_store(config, daemon=not running, kind="process")
    try:
        async with client_for(config.cleanvoice, api_key) as client:
            share_budget(config, store, client)
            pipeline = Pipeline(Runtime(config, store, client))
            ids = [await _take(config, store, pipeline, path, preset, report) for path in paths]
            if running:
                report(f"a cvsyncd daemon (pid {running}) is running: it does the work")
            else:
                pipeline.recover()
            return await _follow(store, pipeline, ids, own_pipeline=not running, report=report)
    finally:
        store.close()


async def _take(
    config: Config, store: Store, pipeline: Pipeline, path: Path, preset: str | None, report: Report
) -> int:
    path = path.resolve()
    if not path.is_file():
        raise ProcessError(f"{path}: not a file")
    folder, in_inbox = folder_for_file(config, path)
    if in_inbox and preset is None:
        verdict = await pipeline.intake_steps.take_file(folder, path, backlog=False)
        rel = path.relative_to(folder.inbox).as_posix()
        st = path.stat()
        job = store.find_by_input(folder.key, rel, st.st_size, st.st_mtime_ns)
        if job is None:
            raise ProcessError(f"{path}: not taken ({getattr(verdict, 'reason', None) or verdict})")
        return job.id
    st, fingerprint = await asyncio.to_thread(inputs.fingerprint, path.parent, path.name)
    options: dict[str, Any] = dict(config.presets[preset] if preset else folder.options)
    name = path.name
    facts = {"preset": preset or folder.preset, "input_at": str(path), "adhoc": True}
    job = store.create_job(
        folder.key,
        name,
        [InputFile.of(name, st, fingerprint)],
        options,
        facts=facts,
    )
    if job is None:
        existing = store.find_by_identity(folder.key, name, fingerprint)
        assert existing is not None
        report(f"{name}: already known as job {existing.id} ({existing.state})")
        return existing.id
    report(f"{name}: queued as job {job.id} (folder {folder.name})")
    return job.id


async def _follow(
    store: Store, pipeline: Pipeline, ids: list[int], *, own_pipeline: bool, report: Report
) -> list[Job]:
    stop, force = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: force.set() if stop.is_set() else stop.set())
    runner = asyncio.create_task(pipeline.run(stop, force)) if own_pipeline else None
    shown: dict[int, str] = {}
    try:
        while True:
            jobs = [j for j in (store.get(i) for i in ids) if j is not None]
            for job in jobs:
                line = describe(job)
                if shown.get(job.id) != line:
                    shown[job.id] = line
                    report(line)
            # a held job waits for the user or a budget: this run ends, saying why
            if all(j.state in TERMINAL or j.state is JobState.HELD for j in jobs) or stop.is_set():
                break
            pipeline.wake()
            await asyncio.sleep(POLL_SECONDS)
    finally:
        stop.set()
        if runner is not None:
            await runner
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return [j for j in (store.get(i) for i in ids) if j is not None]


def describe(job: Job) -> str:
    """One line of progress for a job."""
    name = Path(job.name).name
    progress = job.progress or {}
    if job.state is JobState.UPLOADING and progress.get("size"):
        return f"{name}: uploading {100 * progress['uploaded'] // progress['size']}%"
    if job.state is JobState.PROCESSING:
        percent = progress.get("percent")
        return f"{name}: processing at Cleanvoice" + (f" ({percent}%)" if percent else "")
    if job.state is JobState.DONE:
        outputs = [o["path"] for o in job.outputs if o.get("written") and o["kind"] != "tracks"]
        first = os.path.relpath(outputs[0]) if outputs else ""
        return f"{name}: done" + (f" → {first}" if first else "")
    if job.state in TERMINAL or job.state is JobState.HELD:
        return f"{name}: {job.state} — {job.error}"
    return f"{name}: {job.state}"
