"""ffmpeg and ffprobe as cvsyncd drives them, on real files made by ffmpeg: the sound comes
out without loss, goes back in with every other stream kept, and a result that is not the
original with its sound replaced is caught."""

from __future__ import annotations

import os
import subprocess
from array import array
from pathlib import Path

import pytest

from cvsyncd.pipeline import avtools
from tests.media import FFMPEG, ffmpeg, make_video, needs_ffmpeg, stream_hash

pytestmark = [needs_ffmpeg, pytest.mark.timeout(120)]


def samples(path: Path) -> array[int]:
    """The first audio stream decoded to 32-bit integers."""
    out = subprocess.run(
        [str(FFMPEG), "-v", "error", "-i", str(path), "-map", "0:a:0", "-f", "s32le", "-"],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    return array("i", out)


def opened(path: Path) -> int:
    return os.open(path, os.O_RDONLY)


def test_aac_is_copied_out_bit_for_bit(tmp_path: Path) -> None:
    video = make_video(tmp_path / "v.mp4")
    fd = opened(video)
    try:
        layout = avtools.read_layout(fd)
        stream = layout.first_audio
        assert stream is not None and stream.codec == "aac"
        assert avtools.audio_container("aac") == ("m4a", "mp4")
        avtools.extract_audio(fd, stream, tmp_path / "sound.part")
    finally:
        os.close(fd)
    assert stream_hash(tmp_path / "sound.part", "0:a:0") == stream_hash(video, "0:a:0")


def test_a_codec_cleanvoice_may_not_take_goes_out_as_lossless_flac(tmp_path: Path) -> None:
    made = make_video(tmp_path / "v.mkv", extra_audio=False, subtitles=False)
    video = tmp_path / "opus.mkv"
    ffmpeg("-i", str(made), "-map", "0", "-c:v", "copy", "-c:a", "libopus", str(video))
    fd = opened(video)
    try:
        stream = avtools.read_layout(fd).first_audio
        assert stream is not None and stream.codec == "opus"
        avtools.extract_audio(fd, stream, tmp_path / "sound.part")
    finally:
        os.close(fd)
    assert avtools.read_layout(tmp_path / "sound.part").streams[0].codec == "flac"
    # the decoded samples, kept at 24 bits: at most one 24-bit step from the decoder's own
    before, after = samples(video), samples(tmp_path / "sound.part")
    assert len(before) == len(after)
    assert max(abs(a - b) for a, b in zip(before, after, strict=True)) <= 256


def put_back(
    video: Path, cleaned: Path, target: Path
) -> tuple[avtools.Layout, avtools.Mismatch | None]:
    fd = opened(video)
    try:
        layout = avtools.read_layout(fd)
        stream = layout.first_audio
        assert stream is not None
        avtools.put_back(fd, layout, stream, cleaned, target, video.suffix.lstrip("."))
    finally:
        os.close(fd)
    return layout, avtools.compare(layout, avtools.read_layout(target), stream)


def test_a_shorter_cleaned_sound_is_caught(tmp_path: Path) -> None:
    video = make_video(tmp_path / "v.mp4", seconds=6)
    shorter = tmp_path / "cut.m4a"
    ffmpeg("-i", str(video), "-map", "0:a:0", "-t", "4.5", "-c", "copy", str(shorter))
    _, why = put_back(video, shorter, tmp_path / "out.part")
    assert why is not None and "did not keep the timing" in str(why)
    assert why.timing  # the cleaned sound does not fit: the edit is unusable


def test_the_same_length_passes_and_keeps_every_stream(tmp_path: Path) -> None:
    video = make_video(tmp_path / "v.mp4")
    same = tmp_path / "same.m4a"
    ffmpeg("-i", str(video), "-map", "0:a:0", "-c", "copy", str(same))
    layout, why = put_back(video, same, tmp_path / "out.part")
    assert why is None
    assert len(avtools.read_layout(tmp_path / "out.part").streams) == len(layout.streams) == 4


def test_a_different_picture_is_caught(tmp_path: Path) -> None:
    original = make_video(tmp_path / "v.mp4", extra_audio=False, subtitles=False)
    other = make_video(tmp_path / "w.mp4", size="160x120", extra_audio=False, subtitles=False)
    fd = opened(original)
    try:
        layout = avtools.read_layout(fd)
    finally:
        os.close(fd)
    stream = layout.first_audio
    assert stream is not None
    why = avtools.compare(layout, avtools.read_layout(other), stream)
    assert why == avtools.Mismatch("video stream 0 is not the original one", timing=False)


def test_a_sound_the_container_cannot_hold_is_encoded_to_the_original_codec(
    tmp_path: Path,
) -> None:
    made = make_video(tmp_path / "v.mkv", extra_audio=False, subtitles=False)
    video = tmp_path / "v.webm"
    ffmpeg("-i", str(made), "-c:v", "libvpx", "-deadline", "realtime", "-b:v", "200k",
           "-c:a", "libopus", str(video))  # fmt: skip
    flac = tmp_path / "cleaned.flac"  # WebM cannot hold FLAC: copying fails
    ffmpeg("-i", str(video), "-map", "0:a:0", "-c:a", "flac", str(flac))
    fd = opened(video)
    try:
        layout = avtools.read_layout(fd)
        stream = layout.first_audio
        assert stream is not None
        how = avtools.put_back(fd, layout, stream, flac, tmp_path / "out.part", "webm")
    finally:
        os.close(fd)
    assert how == "encoded to opus"
    result = avtools.read_layout(tmp_path / "out.part")
    assert [s.codec for s in result.streams] == [s.codec for s in layout.streams]
    assert stream_hash(tmp_path / "out.part", "0:v:0") == stream_hash(video, "0:v:0")


def test_missing_tools_and_failures_are_tool_errors(tmp_path: Path) -> None:
    not_media = tmp_path / "x.mp4"
    not_media.write_text("hello")
    with pytest.raises(avtools.ToolError, match="ffprobe failed"):
        avtools.read_layout(not_media)


def test_a_full_disk_is_a_tool_error_of_its_own_cause(tmp_path: Path) -> None:
    """/dev/full answers every write with ENOSPC: ffmpeg's own failure, recognised as a lack
    of room (a put-back waits and retries it), and not turned into an encoding attempt."""
    video = make_video(tmp_path / "v.mp4", extra_audio=False, subtitles=False)
    same = tmp_path / "same.m4a"
    ffmpeg("-i", str(video), "-map", "0:a:0", "-c", "copy", str(same))
    fd = opened(video)
    try:
        layout = avtools.read_layout(fd)
        stream = layout.first_audio
        assert stream is not None
        with pytest.raises(avtools.ToolError, match="No space left on device") as caught:
            avtools.put_back(fd, layout, stream, same, Path("/dev/full"), "mp4")
    finally:
        os.close(fd)
    assert caught.value.cause == "space"


def test_an_ffmpeg_that_cannot_start_is_a_tool_error_of_its_own_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ffmpeg whose interpreter is missing: found on PATH, but the kernel cannot run it."""
    broken = tmp_path / "bin"
    broken.mkdir()
    for name in ("ffmpeg", "ffprobe"):
        (broken / name).write_text("#!/nonexistent/interpreter\n")
        (broken / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{broken}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(avtools.ToolError, match="cannot run") as caught:
        avtools.read_layout(tmp_path)
    assert caught.value.cause == "start"
