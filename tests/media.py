"""Real media for tests, made with ffmpeg's test sources, and independent ways to read it.

ffmpeg is a system package: tests that need it skip with the reason where it is missing;
CI (``.ci/run``) installs it, so there they run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

FFMPEG = shutil.which("ffmpeg")
FFPROBE = shutil.which("ffprobe")
NO_FFMPEG = "ffmpeg/ffprobe are not installed (apt-get install ffmpeg; .ci/run installs them)"
needs_ffmpeg = pytest.mark.skipif(not (FFMPEG and FFPROBE), reason=NO_FFMPEG)


def ffmpeg(*args: str) -> None:
    assert FFMPEG, NO_FFMPEG
    subprocess.run([FFMPEG, "-v", "error", "-y", *args], check=True, timeout=120)


def make_audio(path: Path, seconds: float = 20.0, *, faststart: bool = False) -> Path:
    """A tone as MP3 or M4A (AAC), chosen by the extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = ["-c:a", "libmp3lame"] if path.suffix == ".mp3" else ["-c:a", "aac"]
    flags = ["-movflags", "+faststart"] if faststart else []
    ffmpeg(
        "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
        *codec, "-b:a", "64k", *flags, str(path),
    )  # fmt: skip
    return path


def make_jpeg(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg("-f", "lavfi", "-i", "color=red:s=64x64", "-frames:v", "1", str(path))
    return path


def probe(path: Path, *what: str) -> dict[str, Any]:
    """ffprobe's JSON about ``path`` (``-show_chapters``, ``-show_streams``, …)."""
    assert FFPROBE, NO_FFMPEG
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-of", "json", *what, str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return dict(json.loads(out.stdout))


def decoded_md5(path: Path, stream: str = "0:a:0") -> str:
    """The MD5 of the decoded samples of one stream: equal only if the audio is."""
    assert FFMPEG, NO_FFMPEG
    out = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), "-map", stream, "-f", "md5", "-"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out.stdout.decode().strip()


def without_id3v2(data: bytes) -> bytes:
    """An MP3's bytes after its ID3v2 tag (read from the tag's own header)."""
    if data[:3] != b"ID3":
        return data
    size = 0
    for byte in data[6:10]:
        size = (size << 7) | (byte & 0x7F)
    footer = 10 if data[5] & 0x10 else 0
    return data[10 + size + footer :]


def mdat_payload(path: Path) -> bytes:
    """The media data of an MP4/M4A file (the ``mdat`` box contents), found with mutagen."""
    from mutagen.mp4 import Atoms

    with open(path, "rb") as f:
        atoms = Atoms(f)
        [mdat] = [a for a in atoms.atoms if a.name == b"mdat"]
        f.seek(mdat.offset + 8)
        return f.read(mdat.length - 8)


def make_video(
    path: Path, seconds: float = 6.0, *, size: str = "320x240", video_bitrate: str = "",
    extra_audio: bool = True, subtitles: bool = True,
) -> Path:  # fmt: skip
    """A test-pattern video with a tone (and, as asked, a second audio track in another
    language and a subtitle track), global and per-stream metadata: a container's worth of
    streams for a remux to keep. The extension chooses MP4 (AAC, mov_text) or Matroska."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mp4 = path.suffix in (".mp4", ".mov", ".m4v")
    inputs = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={seconds}"]
    inputs += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    maps = ["-map", "0", "-map", "1"]
    if extra_audio:
        inputs += ["-f", "lavfi", "-i", f"sine=frequency=660:duration={seconds}"]
        maps += ["-map", "2"]
    if subtitles:
        srt = path.with_name(path.stem + ".input.srt")
        srt.write_text("1\n00:00:01,000 --> 00:00:03,000\nHello\n")
        inputs += ["-i", str(srt)]
        maps += ["-map", str(len(maps) // 2)]
    rate = (
        ["-b:v", video_bitrate, "-maxrate", video_bitrate, "-bufsize", video_bitrate]
        if (video_bitrate)
        else []
    )
    ffmpeg(
        *inputs, *maps, "-c:v", "libx264", "-preset", "ultrafast", *rate,
        "-c:a", "aac", "-b:a", "128k", "-c:s", "mov_text" if mp4 else "srt",
        "-metadata", "title=Original title",
        "-metadata:s:a:0", "language=eng", *(["-metadata:s:a:1", "language=deu"] * extra_audio),
        str(path),
    )  # fmt: skip
    if subtitles:
        path.with_name(path.stem + ".input.srt").unlink()
    return path


def stream_hash(path: Path, stream: str) -> str:
    """A hash of one stream's packets as stored (no decoding): equal only if the stream
    was copied bit for bit."""
    assert FFMPEG, NO_FFMPEG
    out = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), "-map", stream, "-c", "copy",
         "-f", "streamhash", "-hash", "sha256", "-"],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return out.stdout.decode().split(",")[-1].strip()
