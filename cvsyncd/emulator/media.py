"""Recognising uploaded media by its first bytes, and estimating its duration.

The real service fails an edit whose input is not audio or video; the emulator does the
same from magic numbers (it has no decoder). Durations drive the processing time, the
credits charged and the generated transcript: WAV is measured exactly, MP3, MP4/M4A (video
too), FLAC and Ogg from their headers with mutagen, as the real service measures the real
length; anything mutagen cannot read is estimated from its size at an assumed bitrate.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

SNIFF_BYTES = 64
ASSUMED_BITRATE = 128_000  # bit/s, for everything but WAV


@dataclass(frozen=True)
class MediaInfo:
    """What the emulator knows about one uploaded file."""

    kind: str  # "wav", "mp3", "aac", "flac", "ogg", "mp4", "mkv", "aiff", "avi"
    duration: float  # seconds


def _is_mpeg_audio(head: bytes) -> bool:
    # 11-bit frame sync, then a layer other than the reserved 00 (00 is ADTS AAC).
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06 != 0


def _is_adts(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0


def sniff_kind(head: bytes) -> str | None:
    """Given the first bytes of a file, return its container kind, or None if not media."""
    riff = head[8:12] if head[:4] in (b"RIFF", b"RF64") else b""
    checks = (
        (riff == b"WAVE", "wav"),
        (riff == b"AVI ", "avi"),
        (head[:4] == b"fLaC", "flac"),
        (head[:4] == b"OggS", "ogg"),
        (head[4:8] == b"ftyp", "mp4"),
        (head[:4] == b"\x1a\x45\xdf\xa3", "mkv"),
        (head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"), "aiff"),
        (head[:3] == b"ID3" or _is_mpeg_audio(head), "mp3"),
        (_is_adts(head), "aac"),
    )
    return next((kind for matched, kind in checks if matched), None)


def wav_duration(path: Path) -> float | None:
    """Return the exact duration of a PCM WAV file, or None if ``wave`` cannot read it."""
    try:
        with wave.open(str(path), "rb") as reader:
            rate = reader.getframerate()
            return reader.getnframes() / rate if rate else None
    except (wave.Error, EOFError, OSError):
        return None


def header_duration(path: Path) -> float | None:
    """Return the length a container's header states (mutagen), or None if unreadable."""
    import mutagen

    try:
        media = mutagen.File(path)
    except Exception:  # mutagen raises many kinds for a header it cannot read
        return None
    length = getattr(getattr(media, "info", None), "length", None)
    return float(length) if isinstance(length, int | float) and length > 0 else None


def estimated_duration(size: int) -> float:
    """Return the duration of ``size`` bytes of compressed audio at the assumed bitrate."""
    return size * 8 / ASSUMED_BITRATE


def inspect_media(path: Path) -> MediaInfo | None:
    """Return what kind of media ``path`` holds and how long it lasts, or None if not media."""
    with path.open("rb") as source:
        kind = sniff_kind(source.read(SNIFF_BYTES))
    if kind is None:
        return None
    duration = wav_duration(path) if kind == "wav" else header_duration(path)
    if duration is None:
        duration = estimated_duration(path.stat().st_size)
    return MediaInfo(kind=kind, duration=duration)
