"""What a finished job leaves in the outbox, and under which names.

Output names come from the job record (the input's path relative to its inbox), never
from a name the server supplied. The outbox mirrors the inbox: ``inbox/show/ep1.wav``
becomes ``outbox/show/ep1.<ext>``, ``ep1.cleanvoice.json`` and, as the preset asks,
``ep1.transcript.srt``, ``ep1.summary.md``, ``ep1.markers.timeline_audacity.txt`` …
A multi-track session ``inbox/show/session-3/`` gets the folder ``outbox/show/session-3/``
with the cleaned tracks (named after the inputs), the mix and the same records.

When a name is taken by a file that is not ours, ``on_conflict`` decides: ``suffix`` (the
default) moves the whole set to ``ep1 (2).…``, so a user's file is never overwritten;
``overwrite`` replaces it; ``skip`` leaves that file alone and does not write ours. The plan
is stored in the job before anything is written, so a redo after a crash writes the same
names again.

Each plan entry is a dict: ``kind`` (media, tracks, mix, marker, derived, json), ``path``
(absolute), for downloads ``source`` (the result key holding the URL) and ``name`` (a
marker's name), for derived files ``suffix``; ``ours`` when the name may be replaced
(our own session folder, or ``overwrite``), ``skip`` when a user's file keeps the name.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from cvsyncd import __version__
from cvsyncd.config import Folder
from cvsyncd.jobs import Job, iso_time
from cvsyncd.outbox.files import NAME_MAX
from cvsyncd.outbox.render.markers import marker_extension
from cvsyncd.redact import REDACTED, redact_url, shown_options

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
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")

Plan = list[dict[str, Any]]


def safe_relative(name: str) -> PurePosixPath:
    """Return a job's relative input path, refusing anything that could escape a folder."""
    if "\x00" in name or not name or name.startswith("/"):
        raise ValueError(f"not a safe relative path: {name!r}")
    path = PurePosixPath(name)
    if any(part in ("..", ".", "") for part in path.parts):
        raise ValueError(f"not a safe relative path: {name!r}")
    return path


def extension_of(url: object) -> str | None:
    """The media extension in a URL's path (a server's name is used for nothing else)."""
    if not isinstance(url, str):
        return None
    ext = posixpath.splitext(urlsplit(url).path)[1].lstrip(".").lower()
    return ext if ext in MEDIA_EXTENSIONS else None


def media_extension(job: Job, result: Mapping[str, Any]) -> str:
    """The extension of the cleaned file: from the result, else the config or the input.

    A video whose sound was sent alone comes back as sound and is put back into the
    video here: it keeps the input's extension.
    """
    sent = job.facts.get("video_upload")
    if isinstance(sent, Mapping) and sent.get("mode") == "audio":
        return posixpath.splitext(job.name)[1].lstrip(".").lower()
    for candidate in (result.get("download_url"), result.get("filename")):
        ext = extension_of(candidate)
        if ext:
            return ext
    wanted = job.options.get("export_format")
    if isinstance(wanted, str) and wanted != "auto":
        return wanted
    first = job.inputs[0].rel_path if job.inputs else job.name
    return posixpath.splitext(first)[1].lstrip(".").lower() or "audio"


def first_url(value: Any) -> str | None:
    """A URL field that may be a string or a list of them (``merged_audio_url``)."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, list) and value and isinstance(value[0], str):
        return value[0]
    return None


def marker_file_name(name: str) -> str:
    """A marker's server-supplied name, made safe for a file name."""
    return _UNSAFE.sub("_", name).strip("_")[:60] or "markers"


def plan_outputs(
    folder: Folder,
    job: Job,
    result: Mapping[str, Any],
    derived: Sequence[str] = (),
    markers: Mapping[str, str] | None = None,
) -> Plan:
    """The outputs of ``job`` with their final paths, chosen per ``folder.on_conflict``.

    ``derived`` are the suffixes of locally rendered files (transcripts, summaries …),
    ``markers`` the marker files to download (name → URL; each keeps its own text
    extension, see ``render.markers.marker_extension``).
    """
    markers = markers or {}
    rel = safe_relative(job.name)
    directory = folder.outbox.joinpath(*rel.parent.parts)
    if job.facts.get("session"):
        return _plan_session(folder, job, result, directory / rel.name, derived, markers)
    n = 1
    while True:
        stem = _fit_stem(rel.stem if n == 1 else f"{rel.stem} ({n})", derived)
        plan = _entries(directory, stem, job, result, derived, markers, session=False)
        if folder.on_conflict != "suffix" or not any(os.path.lexists(e["path"]) for e in plan):
            return _apply_policy(folder.on_conflict, plan)
        n += 1


def _plan_session(
    folder: Folder,
    job: Job,
    result: Mapping[str, Any],
    base: Path,
    derived: Sequence[str],
    markers: Mapping[str, str],
) -> Plan:
    """A session's outputs go into a folder of their own; a taken folder gets a number."""
    directory, n = base, 1
    while folder.on_conflict == "suffix" and os.path.lexists(directory):
        n += 1
        directory = base.with_name(f"{base.name} ({n})")
    stem = _fit_stem(base.name, derived)
    plan = _entries(directory, stem, job, result, derived, markers, session=True)
    if folder.on_conflict == "skip":
        return _apply_policy("skip", plan)
    for entry in plan:
        entry["ours"] = True  # our own folder: a redo may replace what it holds
    return plan


def _entries(
    directory: Path,
    stem: str,
    job: Job,
    result: Mapping[str, Any],
    derived: Sequence[str],
    markers: Mapping[str, str],
    *,
    session: bool,
) -> Plan:
    plan: Plan = []
    if session:
        plan.append({"kind": "tracks", "path": str(directory), "source": "download_url"})
        if first_url(result.get("merged_audio_url")):
            ext = extension_of(first_url(result.get("merged_audio_url"))) or media_extension(
                job, result
            )
            plan.append(
                {
                    "kind": "mix",
                    "path": str(directory / f"{stem}.{ext}"),
                    "source": "merged_audio_url",
                }
            )
    else:
        plan.append(
            {
                "kind": "media",
                "path": str(directory / f"{stem}.{media_extension(job, result)}"),
                "source": "download_url",
            }
        )
    for name, url in markers.items():
        ext = marker_extension(url)
        plan.append(
            {
                "kind": "marker",
                "name": name,
                "source": "timestamps_markers_urls",
                "path": str(directory / f"{stem}.markers.{marker_file_name(name)}.{ext}"),
            }
        )
    for suffix in derived:
        plan.append(
            {"kind": "derived", "suffix": suffix, "path": str(directory / f"{stem}{suffix}")}
        )
    plan.append({"kind": "json", "path": str(directory / f"{stem}{JSON_SUFFIX}")})
    return plan


def _apply_policy(policy: str, plan: Plan) -> Plan:
    for entry in plan:
        if entry["kind"] == "tracks":
            continue
        if policy == "overwrite":
            entry["ours"] = True
        elif policy == "skip" and os.path.lexists(entry["path"]):
            entry["skip"] = True
    return plan


def _fit_stem(stem: str, derived: Sequence[str]) -> str:
    """Shorten a stem so that its longest output name still fits in NAME_MAX bytes."""
    marker = ".markers." + "x" * 60 + ".json"
    longest = max(len(s.encode()) for s in (*derived, JSON_SUFFIX, marker))
    room = NAME_MAX - longest - len(" (999)")
    encoded = stem.encode()
    return encoded[:room].decode("utf-8", "ignore") if len(encoded) > room else stem


def written_paths(plan: Sequence[Mapping[str, Any]]) -> list[str]:
    """The files a plan put in the outbox (a session's tracks included)."""
    paths: list[str] = []
    for entry in plan:
        if entry.get("skip") or not entry.get("written"):
            continue
        if entry["kind"] == "tracks":
            paths.extend(entry.get("files", []))
        else:
            paths.append(entry["path"])
    return paths


def redact_result(value: Any) -> Any:
    """Return a result with every URL's query string removed.

    Download URLs are signed: they must not reach the database or the outbox. Parts with
    no URL in them are returned as they are, not copied: a long transcript is a million
    small objects, and a second copy of it would double the memory a result takes.
    """
    if isinstance(value, Mapping):
        changed = {k: redact_result(v) for k, v in value.items()}
        same = all(changed[k] is v for k, v in value.items())
        return value if same else changed
    if isinstance(value, list):
        items = [redact_result(v) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if isinstance(value, str) and "://" in value and ("?" in value or "#" in value):
        return redact_url(value)
    return value


def render_job_json(folder: Folder, job: Job, result: Mapping[str, Any], plan: Plan) -> bytes:
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
            "outputs": [os.path.basename(p) for p in written_paths(plan)]
            + [os.path.basename(e["path"]) for e in plan if e["kind"] == "json"],
            "note": f"URLs are shown without their signature ({REDACTED}); they expire anyway",
        },
        "config": shown_options(job.options),
        "statistics": result.get("statistics"),
        "result": redact_result(result),
    }
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
