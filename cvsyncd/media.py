"""What a local file is, read from its first bytes — before paying for an upload.

``probe`` tells audio from video from neither by the file's magic numbers (not its name),
and reads the duration from the container's header with ``mutagen`` (a small, pure-Python
library for audio metadata; no decoding, no external programs). The duration sets the
first status poll; a file that is empty or not media fails before it is uploaded.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

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
    """Read what ``path`` is. Never raises for a bad file; OSError if it cannot be read."""
    with open(path, "rb") as f:
        header = f.read(HEADER_BYTES)
    if not header:
        return Probe(None, None, "the file is empty (0 bytes)")
    kind = sniff(header)
    if kind is None:
        return Probe(
            None,
            None,
            "this is not an audio or video file that Cleanvoice can "
            f"read: its first bytes are not those of any media format ({path.suffix} "
            "is only its name)",
        )
    return Probe(kind, _duration(path))


def _duration(path: Path) -> float | None:
    with contextlib.suppress(Exception):  # mutagen raises many kinds for odd headers
        info = mutagen.File(path)
        length = getattr(getattr(info, "info", None), "length", None)
        if isinstance(length, int | float) and length > 0:
            return float(length)
    return None
