"""What happens to an edit: the status it shows while "processing", and its outcome.

Like the real service, the emulator fetches the input files only when processing ends
(the first poll after the processing time): a URL that names no uploaded object is
accepted at creation and the edit fails later, with a plain message. The outcome is
computed once and kept; the presigned URLs in a result are made fresh on every poll.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from cvsyncd.emulator import artifacts, content
from cvsyncd.emulator.media import MediaInfo, inspect_media

RUNNING_STATES = (
    "PENDING",
    "STARTED",
    "PREPROCESSING",
    "CLASSIFICATION",
    "EDITING",
    "POSTPROCESSING",
    "EXPORT",
)
FORCED_FAILURE_MESSAGE = "Emulated processing failure"
HASH_BLOCK = 1024 * 1024


def running_status(fraction: float) -> tuple[str, dict[str, Any] | None]:
    """Given how far processing is (0…1), return the status and its ``result``.

    PENDING has no result, STARTED an empty one, later states a progress object.
    """
    index = min(max(int(fraction * len(RUNNING_STATES)), 0), len(RUNNING_STATES) - 1)
    state = RUNNING_STATES[index]
    if index == 0:
        return state, None
    if index == 1:
        return state, {}
    progress = {
        "done": min(99, int(fraction * 100)),
        "total": 100,
        "state": state,
        "phase": index - 1,
        "step": 1,
        "substep": 0,
        "job_name": f"emulated_{state.lower()}",
    }
    return state, progress


@dataclass(frozen=True)
class Track:
    """One input file of an edit: the URL as given and the uploaded object it names."""

    url: str
    name: str  # the filename given at upload
    path: Path | None  # None when the URL names no uploaded object


@dataclass(frozen=True)
class Success:
    """A finished edit: result fields, and the names of its files in the results folder."""

    fields: Mapping[str, Any]  # the result without URLs
    download: str
    merged: str | None
    markers: str | None
    timestamps_json: str | None = None  # the same edits as JSON (listed in some variants)

    def file_for(self, name: str) -> str | None:
        """The stored file a URL name stands for (the name may lack its extension)."""
        names = [n for n in (self.download, self.merged, self.markers, self.timestamps_json) if n]
        if name in names:
            return name
        return next((n for n in names if PurePosixPath(n).stem == name), None)


@dataclass(frozen=True)
class Failure:
    message: str


Outcome = Success | Failure


def _public(url: str) -> str:
    return url.split("?", 1)[0].split("#", 1)[0]


def _check_track(track: Track) -> MediaInfo | Failure:
    if track.path is None or not track.path.exists():
        return Failure(f"Could not download the input file {_public(track.url)}: no such object")
    if track.path.stat().st_size == 0:
        return Failure(f"The input file {track.name} is empty")
    info = inspect_media(track.path)
    if info is None:
        return Failure(f"The input file {track.name} is not a supported audio or video format")
    return info


def _digest(paths: Sequence[Path]) -> bytes:
    hasher = hashlib.sha256()
    for path in paths:
        with path.open("rb") as source:
            while block := source.read(HASH_BLOCK):
                hasher.update(block)
    return hasher.digest()


def _extension(config: Mapping[str, Any], name: str, fallback: str) -> str:
    export = config.get("export_format", "auto")
    if export != "auto":
        return str(export)
    suffix = PurePosixPath(name).suffix.lower().lstrip(".")
    return suffix or fallback


def _track_member_names(
    tracks: Sequence[Track], infos: Sequence[MediaInfo], config: Mapping[str, Any]
) -> list[str]:
    names = []
    for track, info in zip(tracks, infos, strict=True):
        stem = PurePosixPath(track.name).stem or "track"
        names.append(f"{stem}.{_extension(config, track.name, info.kind)}")
    return artifacts.unique_names(names)


def _write_media(
    tracks: Sequence[Track],
    infos: Sequence[MediaInfo],
    config: Mapping[str, Any],
    base: str,
    folder: Path,
) -> tuple[str, str | None]:
    paths = [track.path for track in tracks if track.path is not None]
    if len(tracks) == 1:
        download = f"{base}.{_extension(config, tracks[0].name, infos[0].kind)}"
        artifacts.place_copy(paths[0], folder / download)
    else:
        download = f"{base}.zip"
        members = _track_member_names(tracks, infos, config)
        artifacts.write_zip(list(zip(members, paths, strict=True)), folder / download)
    merged = None
    if len(tracks) > 1 and (config.get("merge") is True or config.get("automix") is True):
        mix_name = "mix.wav" if artifacts.mixable(paths) else tracks[0].name
        merged = f"{base}_merged.{_extension(config, mix_name, infos[0].kind)}"
        artifacts.write_mix(paths, folder / merged)
    return download, merged


def _result_fields(
    config: Mapping[str, Any], base: str, digest: bytes, duration: float
) -> dict[str, Any]:
    summarize = config.get("summarize") is True
    return {
        "video": config.get("video") is True,
        "filename": base,
        "statistics": content.make_statistics(digest, duration),
        "transcription": content.make_transcription(duration)
        if config.get("transcription") is True
        else [],
        "summarization": content.make_summarization(duration) if summarize else [],
        "social_content": content.make_social_content()
        if config.get("social_content") is True
        else [],
        "waveform_result": None,
    }


def process_edit(
    tracks: Sequence[Track], config: Mapping[str, Any], folder: Path, *, forced_failure: bool
) -> Outcome:
    """Fetch and check the inputs, write the result files into ``folder``, return the outcome."""
    if forced_failure:
        return Failure(FORCED_FAILURE_MESSAGE)
    infos: list[MediaInfo] = []
    for track in tracks:
        checked = _check_track(track)
        if isinstance(checked, Failure):
            return checked
        infos.append(checked)
    paths = [track.path for track in tracks if track.path is not None]
    duration = max(info.duration for info in infos)
    digest = _digest(paths)
    base = uuid.uuid4().hex
    folder.mkdir(parents=True, exist_ok=True)
    download, merged = _write_media(tracks, infos, config, base, folder)
    fields = _result_fields(config, base, digest, duration)
    markers = timestamps_json = None
    if config.get("export_timestamps") is True:
        markers = f"{base}_timeline_audacity.txt"
        timestamps_json = f"{base}_timestamps.json"
        found = content.make_markers(
            fields["statistics"], digest, duration, muted=config.get("muted") is True
        )
        artifacts.write_text(folder / markers, content.render_audacity_labels(found))
        artifacts.write_text(folder / timestamps_json, content.render_markers_json(found))
    return Success(
        fields=fields,
        download=download,
        merged=merged,
        markers=markers,
        timestamps_json=timestamps_json,
    )


def media_duration(path: Path | None) -> float:
    """Return the duration of an uploaded object, or 0 when it is missing or not media."""
    if path is None or not path.exists():
        return 0.0
    info = inspect_media(path)
    return info.duration if info is not None else 0.0
