"""Sending a video's sound alone: ffprobe and ffmpeg, driven from here.

- :func:`read_layout` lists a file's streams (through a descriptor, so the input read is the
  proven one);
- :func:`extract_audio` copies one audio stream out of a video, without re-encoding when a
  container Cleanvoice takes can hold it (AAC → M4A, MP3, FLAC, PCM → WAV), else decoded
  and kept losslessly as 24-bit FLAC;
- :func:`put_back` remuxes the cleaned audio into the original video with stream copy: every
  other stream (the picture, subtitles, other audio tracks, attachments), the global and
  per-stream metadata and the chapters are kept; the cleaned audio is copied too, and only
  re-encoded (to the original's codec) if the container cannot hold it as it came;
- :func:`compare` checks the result against the original: the same video streams, and the
  same durations within one frame. A :class:`Mismatch` says what differs, and whether it
  is the timing (the cleaned sound does not fit the video: the edit itself is unusable).

Every call has a timeout and its error output is kept short; nothing here decides what to
do when something fails — the upload and fetch steps do.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TIMEOUT = 6 * 3600.0  # a remux of a long 4K recording on a slow NAS disk is minutes, not hours
PROBE_TIMEOUT = 120.0
ERROR_CHARS = 600

#: the container a copied audio stream goes into, by codec: one that Cleanvoice takes
AUDIO_CONTAINERS = {
    "aac": ("m4a", "mp4"),
    "mp3": ("mp3", "mp3"),
    "flac": ("flac", "flac"),
    "pcm_s16le": ("wav", "wav"),
    "pcm_s24le": ("wav", "wav"),
    "pcm_s32le": ("wav", "wav"),
    "pcm_f32le": ("wav", "wav"),
}
LOSSLESS = ("flac", "flac")  # any other codec is decoded and stored losslessly
#: the muxer for each video extension cvsyncd takes
VIDEO_MUXERS = {"mp4": "mp4", "m4v": "mp4", "mov": "mov", "mkv": "matroska", "webm": "webm"}
#: an encoder for the original's audio codec, if the cleaned audio cannot be copied in
ENCODERS = {
    "aac": "aac",
    "mp3": "libmp3lame",
    "opus": "libopus",
    "vorbis": "libvorbis",
    "flac": "flac",
    "ac3": "ac3",
    "alac": "alac",
}


#: what ffmpeg says when it cannot write its output for lack of room
NO_ROOM = ("No space left on device", "Disk quota exceeded", "File too large")


class ToolError(Exception):
    """ffmpeg or ffprobe failed or is missing; the message says which and why.

    ``cause`` says what kind of failure it was, for the advice a caller gives: "missing"
    (not installed), "start" (could not be run), "timeout", "space" (no room for its
    output), "failed" (it ran and gave up: ``message`` has its own words), "answer" (an
    answer that cannot be read)."""

    def __init__(self, message: str, cause: str = "failed"):
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class Mismatch:
    """How a remuxed video differs from its original. ``timing``: a length differs, so the
    cleaned sound does not fit the video; otherwise the remux itself went wrong."""

    reason: str
    timing: bool

    def __str__(self) -> str:
        return self.reason


def tools() -> tuple[str, str] | None:
    """The paths of ffmpeg and ffprobe, or None if either is not installed."""
    ffmpeg, ffprobe = shutil.which("ffmpeg"), shutil.which("ffprobe")
    return (ffmpeg, ffprobe) if ffmpeg and ffprobe else None


def _need_tools() -> tuple[str, str]:
    found = tools()
    if found is None:
        raise ToolError(
            "ffmpeg and ffprobe are not installed (e.g. apt-get install ffmpeg)", "missing"
        )
    return found


def _run(argv: Sequence[str], timeout: float, fds: Sequence[int] = ()) -> bytes:
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            pass_fds=tuple(fds),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ToolError(
            f"{Path(argv[0]).name} took longer than {timeout:.0f} s", "timeout"
        ) from None
    except OSError as exc:
        raise ToolError(f"cannot run {argv[0]}: {exc.strerror or exc}", "start") from None
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip()[-ERROR_CHARS:]
        cause = "space" if any(words in said for words in NO_ROOM) else "failed"
        raise ToolError(f"{Path(argv[0]).name} failed (exit {done.returncode}): {said}", cause)
    return done.stdout


def fd_path(fd: int) -> str:
    """A name for an open descriptor that a child given ``pass_fds`` can open."""
    return f"/dev/fd/{fd}"


@dataclass(frozen=True)
class Stream:
    index: int
    kind: str  # video, audio, subtitle, data, attachment
    codec: str
    duration: float | None
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None
    frames: int | None = None
    cover_art: bool = False  # a picture attached as artwork, not a video track
    bit_rate: int | None = None


@dataclass(frozen=True)
class Layout:
    streams: tuple[Stream, ...]
    duration: float | None

    @property
    def videos(self) -> list[Stream]:
        return [s for s in self.streams if s.kind == "video" and not s.cover_art]

    @property
    def first_audio(self) -> Stream | None:
        return next((s for s in self.streams if s.kind == "audio"), None)

    @property
    def frame(self) -> float:
        """One frame of the first video stream, in seconds (1/25 s if unknown)."""
        rate = self.videos[0].frame_rate if self.videos else None
        return 1 / rate if rate else 0.04


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and number >= 0 else None  # not NaN


def _rate(value: Any) -> float | None:
    if not isinstance(value, str) or "/" not in value:
        return None
    top, _, bottom = value.partition("/")
    try:
        return float(top) / float(bottom) if float(bottom) and float(top) else None
    except ValueError:
        return None


def _tag_duration(tags: Mapping[str, Any]) -> float | None:
    """Matroska keeps a stream's length in a ``DURATION`` tag (``HH:MM:SS.nnnnnnnnn``)."""
    value = next((v for k, v in tags.items() if k.upper() == "DURATION"), None)
    if not isinstance(value, str) or value.count(":") != 2:
        return None
    hours, minutes, rest = value.split(":")
    try:
        return int(hours) * 3600 + int(minutes) * 60 + float(rest)
    except ValueError:
        return None


def _stream(raw: Mapping[str, Any]) -> Stream:
    tags = raw.get("tags") if isinstance(raw.get("tags"), dict) else {}
    disposition = raw.get("disposition") if isinstance(raw.get("disposition"), dict) else {}
    frames = _number(raw.get("nb_frames"))
    rate = _number(raw.get("bit_rate"))
    return Stream(
        index=int(raw.get("index", -1)),
        kind=str(raw.get("codec_type", "")),
        codec=str(raw.get("codec_name", "")),
        duration=_number(raw.get("duration")) or _tag_duration(tags or {}),
        width=raw.get("width") if isinstance(raw.get("width"), int) else None,
        height=raw.get("height") if isinstance(raw.get("height"), int) else None,
        frame_rate=_rate(raw.get("avg_frame_rate")) or _rate(raw.get("r_frame_rate")),
        frames=int(frames) if frames else None,
        cover_art=bool((disposition or {}).get("attached_pic")),
        bit_rate=int(rate) if rate else None,
    )


def read_layout(source: Path | int) -> Layout:
    """The streams and duration of a file (a path, or an open descriptor)."""
    _, ffprobe = _need_tools()
    fds = [source] if isinstance(source, int) else []
    name = fd_path(source) if isinstance(source, int) else str(source)
    out = _run(
        [ffprobe, "-v", "error", "-of", "json", "-show_streams", "-show_format", name],
        PROBE_TIMEOUT,
        fds,
    )
    try:
        document = json.loads(out)
        streams = tuple(_stream(s) for s in document.get("streams", []))
        duration = _number(document.get("format", {}).get("duration"))
    except (ValueError, AttributeError, TypeError) as exc:
        raise ToolError(f"ffprobe gave an answer that cannot be read: {exc}", "answer") from None
    return Layout(streams, duration)


def audio_container(codec: str) -> tuple[str, str]:
    """(extension, ffmpeg muxer) for an extracted stream of ``codec``."""
    return AUDIO_CONTAINERS.get(codec, LOSSLESS)


def extract_audio(source_fd: int, stream: Stream, target: Path) -> None:
    """Write audio stream ``stream`` of the open video to ``target`` (created anew)."""
    ffmpeg, _ = _need_tools()
    _, muxer = audio_container(stream.codec)
    codec = (
        ["-c:a", "copy"]
        if stream.codec in AUDIO_CONTAINERS
        else ["-c:a", "flac", "-sample_fmt", "s32"]  # 24-bit: finer than any lossy decoder's
    )
    _run(
        [
            ffmpeg, "-nostdin", "-v", "error", "-y", "-i", fd_path(source_fd),
            "-map", f"0:{stream.index}", "-vn", "-sn", "-dn", *codec,
            "-map_metadata", "-1", "-f", muxer, str(target),
        ],
        TIMEOUT,
        [source_fd],
    )  # fmt: skip


def put_back(
    original_fd: int,
    layout: Layout,
    replaced: Stream,
    cleaned: Path,
    target: Path,
    extension: str,
) -> str:
    """Remux the original video with ``cleaned`` in place of stream ``replaced`` into
    ``target``; return how the cleaned audio went in ("copied" or "encoded to <codec>")."""
    ffmpeg, _ = _need_tools()
    muxer = VIDEO_MUXERS.get(extension.lower())
    if muxer is None:
        raise ToolError(
            f"a .{extension} video cannot be remuxed here (only {', '.join(VIDEO_MUXERS)})"
        )
    maps: list[str] = []
    out_index = 0
    for position, stream in enumerate(layout.streams):
        if stream.index == replaced.index:
            maps += ["-map", "1:a:0"]
            out_index = position
        else:
            maps += ["-map", f"0:{stream.index}"]
        # each stream's own metadata (language, title) from the original, the new one's too
        maps += [f"-map_metadata:s:{position}", f"0:s:{stream.index}"]
    base = [
        ffmpeg, "-nostdin", "-v", "error", "-y", "-i", fd_path(original_fd), "-i", str(cleaned),
        *maps, "-map_metadata", "0", "-map_chapters", "0", "-c", "copy",
    ]  # fmt: skip
    try:
        _run([*base, "-f", muxer, str(target)], TIMEOUT, [original_fd])
        return "copied"
    except ToolError as copy_failed:
        encoder = ENCODERS.get(replaced.codec)
        if encoder is None or copy_failed.cause != "failed":
            raise copy_failed  # no room, no time, no ffmpeg: encoding would not help
        rate = ["-b:a", str(replaced.bit_rate)] if replaced.bit_rate else []
        _run(
            [*base, f"-c:{out_index}", encoder, *rate, "-f", muxer, str(target)],
            TIMEOUT,
            [original_fd],
        )
        return f"encoded to {replaced.codec}"


def compare(original: Layout, result: Layout, replaced: Stream) -> Mismatch | None:
    """How ``result`` is not the original with its audio replaced, or None if it is."""
    frame = original.frame
    if len(result.streams) != len(original.streams):
        return Mismatch(
            f"it has {len(result.streams)} streams instead of {len(original.streams)}", False
        )
    for before, after in zip(original.streams, result.streams, strict=True):
        if before.kind != after.kind:
            return Mismatch(
                f"stream {before.index} is {after.kind or 'unknown'} instead of {before.kind}",
                False,
            )
        if before.kind == "video" and not before.cover_art:
            same = (before.codec, before.width, before.height) == (
                after.codec,
                after.width,
                after.height,
            )
            if not same or (before.frames and after.frames and before.frames != after.frames):
                return Mismatch(f"video stream {before.index} is not the original one", False)
    if original.duration and result.duration and abs(original.duration - result.duration) > frame:
        return Mismatch(
            f"it lasts {result.duration:.3f} s instead of {original.duration:.3f} s "
            "(more than a frame apart)",
            True,
        )
    cleaned = result.streams[replaced.index].duration
    if replaced.duration and cleaned and abs(replaced.duration - cleaned) > frame:
        return Mismatch(
            f"the cleaned sound lasts {cleaned:.3f} s instead of {replaced.duration:.3f} s: "
            "the edit did not keep the timing",
            True,
        )
    return None
