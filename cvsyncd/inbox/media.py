"""What a local file is, read from its first bytes — before paying for an upload.

``probe_file`` tells audio from video from neither by the file's magic numbers (not its
name), then parses the container's header with ``mutagen`` (a small, pure-Python library
for audio metadata; no decoding, no external programs) to know that it really holds audio,
and for how long. The duration sets the first status poll; a file that is empty, not
media, cut short or without audio fails before it is uploaded.
"""

from __future__ import annotations

import importlib
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import mutagen

HEADER_BYTES = 64


@dataclass(frozen=True)
class Probe:
    format: str | None  # "wav", "mp3", "flac", "ogg", "mp4", "matroska", "aac", "aiff", "avi"
    duration: float | None  # seconds, when the header tells
    problem: str | None = None  # why this is not usable media, in plain words

    @property
    def ok(self) -> bool:
        return self.problem is None


def sniff(header: bytes) -> str | None:
    """Return the container format named by a file's first bytes, or None."""
    if header[:4] in (b"RIFF", b"RF64") and header[8:12] == b"WAVE":
        return "wav"
    if header[:4] == b"RIFF" and header[8:12] == b"AVI ":
        return "avi"
    if header[:4] == b"FORM" and header[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if header[:4] == b"fLaC":
        return "flac"
    if header[:4] == b"OggS":
        return "ogg"
    if header[4:8] == b"ftyp":
        return "mp4"
    if header[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if header[:3] == b"ID3":
        return "mp3"
    if len(header) >= 2 and header[0] == 0xFF:
        if header[1] & 0xF6 == 0xF0:  # ADTS: sync, layer 0
            return "aac"
        if header[1] & 0xE0 == 0xE0:  # MPEG audio frame sync
            return "mp3"
    return None


def probe(path: Path) -> Probe:
    """Read what ``path`` is (following no checks of where it is: see ``inputs.py``).
    Never raises for a bad file; OSError if it cannot be read."""
    with open(path, "rb") as f:
        return probe_file(f)


def probe_file(file: IO[bytes]) -> Probe:
    """Read what an open file is: its format from its first bytes, then its header parsed
    with mutagen's parser for that format, far enough to know that it holds audio.

    A file whose header cannot be parsed, that promises more audio than it holds (a WAV
    cut short), or that holds none, is refused here, before anything is paid for. Formats
    mutagen cannot parse (Matroska/WebM, AVI) are taken on their first bytes alone.
    """
    header = file.read(HEADER_BYTES)
    if not header:
        return Probe(None, None, "the file is empty (0 bytes)")
    kind = sniff(header)
    if kind is None:
        return Probe(
            None,
            None,
            "this is not an audio or video file that Cleanvoice can read: its first bytes "
            "are not those of any media format (the extension is only its name)",
        )
    if kind == "wav":
        problem = _wav_problem(file)
        if problem:
            return Probe(kind, None, problem)
    parser = PARSERS.get(kind)
    if parser is None:
        return Probe(kind, None)
    file.seek(0)
    try:
        parsed = parser(file)
    except Exception as exc:  # mutagen raises many kinds for a broken header
        reason = str(exc).strip() or type(exc).__name__
        return Probe(
            kind, None, f"it starts like {NAMES[kind]} but cannot be read as one: {reason}"
        )
    if parsed is None:
        return Probe(kind, None, f"it starts like {NAMES[kind]} but cannot be read as one")
    length = getattr(getattr(parsed, "info", None), "length", None)
    if not isinstance(length, int | float) or length <= 0:
        return Probe(kind, None, f"it is {NAMES[kind]} that holds no audio (0 seconds)")
    return Probe(kind, float(length))


def _wav_problem(file: IO[bytes]) -> str | None:
    """Why a RIFF/WAVE file cannot be whole: no ``data`` chunk, or one cut short."""
    file.seek(0, os.SEEK_END)
    size = file.tell()
    offset = 12
    while offset + 8 <= size:
        file.seek(offset)
        chunk = file.read(8)
        name, length = chunk[:4], struct.unpack("<I", chunk[4:8])[0]
        if name == b"data":
            held = size - offset - 8
            if held <= 0:
                return "it is a WAV header followed by no audio at all (the copy may be incomplete)"
            if length == 0:
                return (
                    "it is a WAV file whose header says it holds no audio (a recorder that "
                    "did not close it properly leaves it so)"
                )
            if length != 0xFFFFFFFF and held + 1 < length:  # 0xFFFFFFFF: a streamed WAV
                return (
                    f"it is a WAV file cut short: its header promises {length} bytes of "
                    f"audio, it holds {held} (the copy may be incomplete)"
                )
            return None
        offset += 8 + length + (length & 1)
    return "it is a WAV file without audio data (no data chunk)"


def _ogg(file: IO[bytes]) -> Any:
    from mutagen.oggflac import OggFLAC
    from mutagen.oggopus import OggOpus
    from mutagen.oggspeex import OggSpeex
    from mutagen.oggvorbis import OggVorbis

    return mutagen.File(file, options=[OggVorbis, OggOpus, OggFLAC, OggSpeex])


def _parser(module: str, name: str) -> Callable[[IO[bytes]], Any]:
    def parse(file: IO[bytes]) -> Any:
        return getattr(importlib.import_module(module), name)(file)

    return parse


PARSERS: dict[str, Callable[[IO[bytes]], Any]] = {
    "wav": _parser("mutagen.wave", "WAVE"),
    "aiff": _parser("mutagen.aiff", "AIFF"),
    "flac": _parser("mutagen.flac", "FLAC"),
    "mp3": _parser("mutagen.mp3", "MP3"),
    "aac": _parser("mutagen.aac", "AAC"),
    "mp4": _parser("mutagen.mp4", "MP4"),
    "ogg": _ogg,
}
NAMES = {
    "wav": "a WAV file",
    "aiff": "an AIFF file",
    "flac": "a FLAC file",
    "mp3": "an MP3 file",
    "aac": "an AAC file",
    "mp4": "an MP4/M4A file",
    "ogg": "an Ogg file",
}
