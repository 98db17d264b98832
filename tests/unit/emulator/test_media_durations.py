"""The emulator measures a real recording's length from its header, as the real service
does, so that a video sent whole and its sound sent alone get the same transcript length,
chapters and credits; only what mutagen cannot read falls back to a size estimate."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvsyncd.emulator.media import estimated_duration, inspect_media
from tests.media import make_audio, make_video, needs_ffmpeg

pytestmark = [needs_ffmpeg, pytest.mark.timeout(120)]


@pytest.mark.parametrize("name", ["a.mp3", "a.m4a"])
def test_audio_lasts_what_its_header_says(tmp_path: Path, name: str) -> None:
    info = inspect_media(make_audio(tmp_path / name, seconds=12))
    assert info is not None and abs(info.duration - 12) < 0.1


def test_a_video_and_its_sound_last_the_same(tmp_path: Path) -> None:
    video = make_video(tmp_path / "v.mp4", seconds=8, size="640x360", video_bitrate="4M")
    info = inspect_media(video)
    assert info is not None and info.kind == "mp4" and abs(info.duration - 8) < 0.1
    # the size estimate (128 kb/s) would have made this video many times longer
    assert estimated_duration(video.stat().st_size) > 3 * info.duration


def test_a_header_mutagen_cannot_read_falls_back_to_the_size(tmp_path: Path) -> None:
    fake = tmp_path / "x.mp3"
    fake.write_bytes(b"ID3" + b"\0" * 7 + b"\x01" * 16_000)
    info = inspect_media(fake)
    assert info is not None and info.duration == estimated_duration(fake.stat().st_size)
