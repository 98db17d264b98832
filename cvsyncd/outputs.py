"""What a finished job leaves in the outbox, and under which names.

Output names come from the job record (the input's path relative to its inbox), never
from a name the server supplied. The outbox mirrors the inbox: ``inbox/show/ep1.wav``
becomes ``outbox/show/ep1.<ext>`` and ``outbox/show/ep1.cleanvoice.json``. If any of those
names is taken by a file that is not ours, the whole set moves to ``ep1 (2).…`` so that a
user's file is never overwritten. The plan is stored in the job before anything is
written, so a redo after a crash writes the same names again.
"""

from __future__ import annotations

import json
import os
import posixpath
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from cvsyncd import __version__
from cvsyncd.config import Folder
from cvsyncd.jobs import Job, iso_time
from cvsyncd.redact import REDACTED, redact_url

MEDIA_EXTENSIONS = frozenset(
    {
        "mp3",
        "wav",
        "flac",
        "m4a",
        "aac",
        "ogg",
        "opus",
        "aiff",
        "aif",
        "mp4",
        "mov",
        "mkv",
        "webm",
        "avi",
        "m4v",
    }
)
JSON_SUFFIX = ".cleanvoice.json"


def safe_relative(name: str) -> PurePosixPath:
    """Return a job's relative input path, refusing anything that could escape a folder."""
    if "\x00" in name or not name or name.startswith("/"):
        raise ValueError(f"not a safe relative path: {name!r}")
    path = PurePosixPath(name)
    if any(part in ("..", ".", "") for part in path.parts):
        raise ValueError(f"not a safe relative path: {name!r}")
    return path


def media_extension(job: Job, result: Mapping[str, Any]) -> str:
    """Return the extension of the cleaned file: from the result, else the config or input."""
    for candidate in (result.get("download_url"), result.get("filename")):
        if isinstance(candidate, str):
            ext = posixpath.splitext(urlsplit(candidate).path)[1].lstrip(".").lower()
            if ext in MEDIA_EXTENSIONS:
                return ext
    wanted = job.options.get("export_format")
    if isinstance(wanted, str) and wanted != "auto":
        return wanted
    return posixpath.splitext(job.name)[1].lstrip(".").lower() or "audio"


def plan_outputs(folder: Folder, job: Job, result: Mapping[str, Any]) -> list[dict[str, str]]:
    """Return the outputs to write for ``job``, with final paths free of other files.

    Each entry has ``kind`` (``media`` or ``json``), ``path`` (absolute) and, for files to
    download, ``source`` (the result key holding the URL).
    """
    rel = safe_relative(job.name)
    directory = folder.outbox.joinpath(*rel.parent.parts)
    stem = rel.stem
    ext = media_extension(job, result)
    n = 1
    while True:
        base = stem if n == 1 else f"{stem} ({n})"
        plan = [
            {"kind": "media", "path": str(directory / f"{base}.{ext}"), "source": "download_url"},
            {"kind": "json", "path": str(directory / f"{base}{JSON_SUFFIX}")},
        ]
        if not any(os.path.lexists(entry["path"]) for entry in plan):
            return plan
        n += 1


def redact_result(value: Any) -> Any:
    """Return a copy of a result with every URL's query string removed.

    Download URLs are signed: they must not reach the database or the outbox.
    """
    if isinstance(value, Mapping):
        return {k: redact_result(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_result(v) for v in value]
    if isinstance(value, str) and "://" in value and ("?" in value or "#" in value):
        return redact_url(value)
    return value


def render_job_json(
    folder: Folder, job: Job, result: Mapping[str, Any], outputs: list[dict[str, str]]
) -> bytes:
    """Return ``<stem>.cleanvoice.json``: the result, its statistics, the config, job facts."""
    document = {
        "cvsyncd": {
            "version": __version__,
            "job": job.id,
            "folder": str(folder.inbox),
            "inputs": [
                {"path": i.rel_path, "size": i.size, "sha256": i.fingerprint} for i in job.inputs
            ],
            "preset": folder.preset,
            "edit_id": job.edit_id,
            "submitted_at": iso_time(job.submitted_at),
            "finished_at": iso_time(time.time()),
            "outputs": [os.path.basename(o["path"]) for o in outputs],
            "note": f"URLs are shown without their signature ({REDACTED}); they expire anyway",
        },
        "config": dict(job.options),
        "statistics": result.get("statistics"),
        "result": redact_result(result),
    }
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def output_paths(job: Job) -> list[Path]:
    return [Path(o["path"]) for o in job.outputs]
