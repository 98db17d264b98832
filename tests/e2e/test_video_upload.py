"""Video without sending the picture, end to end against the emulator: a preset that keeps
the timing sends the sound alone and the cleaned sound goes back into the original video
(picture, other tracks, subtitles and metadata untouched); a preset that cuts sends the
whole video; ``video_upload = "audio"`` refuses a cutting preset; a kill anywhere on the
audio-only path leads to the same result."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from cvsyncd.emulator import Emulator
from cvsyncd.outbox.files import is_temp_name
from tests.conftest import EMULATOR_KEY, DaemonProcess, Setup, creates
from tests.hostile import HostileProxy, Rule
from tests.media import (
    FFPROBE,
    decoded_md5,
    ffmpeg,
    make_video,
    needs_ffmpeg,
    probe,
    stream_hash,
)

pytestmark = [pytest.mark.e2e, needs_ffmpeg, pytest.mark.timeout(180)]

ENHANCE_ONLY = 'remove_noise = true\nnormalize = true\nstudio_sound = "nightly"'


def uploads(emulator: Emulator) -> list[dict[str, Any]]:
    return [r for r in emulator.requests() if r.get("endpoint") == "put" and r["status"] == 200]


def drop_video(setup: Setup, name: str = "ep.mp4", **options: Any) -> Path:
    """Make a video outside the inbox and move it in whole (as a finished copy would)."""
    made = make_video(setup.root / "made" / name, **options)
    target = setup.inbox / name
    shutil.move(made, target)
    return target


def run_until_done(setup: Setup, name: str = "ep.mp4") -> dict[str, Any]:
    """Run a daemon until the video ``name`` is done; return how it chose to upload it."""
    daemon = setup.daemon()
    try:
        chosen = daemon.wait_for_event("job.video_upload")
        daemon.wait_for_event("job.done", path=name, timeout=120)
    finally:
        assert daemon.stop() == 0
    return chosen


def leftovers(setup: Setup) -> list[Path]:
    places = [setup.outbox, setup.state / "extract"]
    return [p for place in places if place.exists() for p in place.rglob("*") if p.is_file()
            and (is_temp_name(p.name) or place.name == "extract")]  # fmt: skip


def assert_sound_replaced(original: Path, out: Path) -> None:
    """``out`` is ``original`` with its first sound track cleaned (the emulator returns
    the sound it got): the picture bit for bit, every other stream and the metadata kept."""
    before, after = (
        probe(original, "-show_streams", "-show_format"),
        probe(out, "-show_streams", "-show_format"),
    )
    kinds = [(s["codec_type"], s["codec_name"]) for s in before["streams"]]
    assert [(s["codec_type"], s["codec_name"]) for s in after["streams"]] == kinds
    assert stream_hash(out, "0:v:0") == stream_hash(original, "0:v:0")
    assert stream_hash(out, "0:a:1") == stream_hash(original, "0:a:1")
    assert stream_hash(out, "0:s:0") == stream_hash(original, "0:s:0")
    assert decoded_md5(out, "0:a:0") == decoded_md5(original, "0:a:0")
    languages = [s.get("tags", {}).get("language") for s in after["streams"]]
    assert languages[1:3] == ["eng", "deu"]
    assert after["format"]["tags"]["title"] == "Original title"
    assert abs(float(after["format"]["duration"]) - float(before["format"]["duration"])) < 0.04


def test_a_timing_keeping_preset_sends_the_sound_alone(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep", preset=ENHANCE_ONLY)
    video = drop_video(setup, size="640x360", video_bitrate="8M")
    daemon = setup.daemon()
    try:
        chosen = daemon.wait_for_event("job.video_upload")
        daemon.wait_for_event("job.done", path="ep.mp4", timeout=120)
        daemon.wait_for_event("job.sound_put_back")
    finally:
        assert daemon.stop() == 0
    assert chosen["mode"] == "audio" and "keeps the timing" in chosen["reason"]
    [put] = uploads(emulator)
    sound = next(s for s in probe(video, "-show_streams")["streams"] if s["codec_type"] == "audio")
    # the picture stayed here: what went is the sound (its packets and an M4A header)
    assert put["bytes_in"] <= 1.1 * int(sound["bit_rate"]) / 8 * float(sound["duration"]) + 4096
    assert put["bytes_in"] <= 0.1 * video.stat().st_size
    [create] = creates(emulator)
    assert create["config"]["video"] is False  # what was sent is sound
    out = setup.outbox / "ep.mp4"
    assert_sound_replaced(video, out)
    assert not leftovers(setup)


def test_muted_cuts_keep_the_timing_too(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep", preset="fillers = true\nmuted = true")
    video = drop_video(setup, "talk.mkv", extra_audio=True)
    chosen = run_until_done(setup, "talk.mkv")
    assert chosen["mode"] == "audio"
    assert_sound_replaced(video, setup.outbox / "talk.mkv")


def test_a_cutting_preset_sends_the_whole_video_and_says_why(
    tmp_path: Path, emulator: Emulator
) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep", preset="fillers = true")
    video = drop_video(setup, extra_audio=False, subtitles=False)
    chosen = run_until_done(setup)
    assert chosen["mode"] == "full" and "fillers = true cuts" in chosen["reason"]
    [put] = uploads(emulator)
    assert put["bytes_in"] == video.stat().st_size
    assert creates(emulator)[0]["config"]["video"] is True
    assert (setup.outbox / "ep.mp4").read_bytes() == video.read_bytes()


def test_video_upload_audio_refuses_a_cutting_preset(tmp_path: Path, emulator: Emulator) -> None:
    # the config itself is checked (tests/unit/config/test_loading.py); a .cvsyncd.toml
    # below the inbox can still turn cuts on for one subfolder: that job is refused
    setup = Setup(
        tmp_path,
        emulator.base_url,
        after="keep",
        preset=ENHANCE_ONLY,
        extra_folder='video_upload = "audio"\n',
    )
    (setup.inbox / "raw").mkdir()
    (setup.inbox / "raw" / ".cvsyncd.toml").write_text("long_silences = true\n")
    made = make_video(setup.root / "made" / "ep.mp4", extra_audio=False, subtitles=False)
    shutil.move(made, setup.inbox / "raw" / "ep.mp4")
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.failed", path="raw/ep.mp4", timeout=60)
    finally:
        assert daemon.stop() == 0
    [job] = setup.jobs()
    assert "long_silences = true cuts" in job["error"] and "muted = true" in job["error"]
    assert not uploads(emulator) and not creates(emulator)  # nothing sent, nothing billed


@pytest.mark.parametrize("point", ["upload.extracted", "upload.signed", "fetch.remuxed"])
def test_a_kill_on_the_audio_only_path_leads_to_the_same_result(
    tmp_path: Path, emulator: Emulator, point: str
) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep", preset=ENHANCE_ONLY)
    video = drop_video(setup)
    crashed = setup.daemon(env={"CVSYNCD_FAILPOINTS": point})
    assert crashed.proc.wait(timeout=120) == -9, crashed.log_text
    crashed.kill()
    assert not (setup.outbox / "ep.mp4").exists()  # nothing half-made is visible
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.done", path="ep.mp4", timeout=120)
    finally:
        assert daemon.stop() == 0
    assert len(creates(emulator)) == 1
    assert_sound_replaced(video, setup.outbox / "ep.mp4")
    assert not leftovers(setup), "an extracted sound or a temp file survived"


def test_a_cleaned_sound_that_does_not_fit_fails_and_a_retry_sends_the_whole_video(
    tmp_path: Path, emulator: Emulator
) -> None:
    """Cleanvoice (a hostile stand-in here) returns a shorter sound for a timing-keeping
    preset: nothing broken is delivered, the job says why, nothing is resent on its own
    (a second edit is billed again), and `cvsyncd retry` sends the whole video."""
    made = make_video(tmp_path / "made" / "ep.mp4", extra_audio=False, subtitles=False)
    shorter = tmp_path / "made" / "short.m4a"
    ffmpeg("-i", str(made), "-map", "0:a:0", "-t", "4", "-c", "copy", str(shorter))
    with HostileProxy(emulator.base_url) as proxy:
        proxy.add(
            Rule("GET", r"/storage/results/.+", "replace", body=shorter.read_bytes(), times=None)
        )
        setup = Setup(tmp_path, proxy.base_url, after="keep", preset=ENHANCE_ONLY)
        video = setup.inbox / "ep.mp4"
        shutil.move(made, video)
        daemon = setup.daemon()
        try:
            daemon.wait_for_event("job.failed", path="ep.mp4", timeout=120)
        finally:
            assert daemon.stop() == 0
        [job] = setup.jobs()
        assert "did not keep the timing" in job["error"] and "cvsyncd retry" in job["error"]
        assert not (setup.outbox / "ep.mp4").exists() and not leftovers(setup)
        assert len(creates(emulator)) == 1  # not resent on its own

        proxy.clear()
        proc = setup.cli("retry", "-c", str(setup.config), str(job["id"]))
        assert proc.returncode == 0, proc.stderr
        chosen = run_until_done(setup)
    assert chosen["mode"] == "full" and "did not fit" in chosen["reason"]
    assert len(creates(emulator)) == 2  # the second one because the user asked
    assert uploads(emulator)[-1]["bytes_in"] == (setup.outbox / "ep.mp4").stat().st_size


# -- the put-back cannot be done now: the paid edit is kept -------------------------------


def shown(setup: Setup, job_id: int) -> dict[str, Any]:
    proc = setup.cli("show", "-c", str(setup.config), str(job_id), "--json")
    assert proc.returncode == 0, proc.stderr
    described: dict[str, Any] = json.loads(proc.stdout)
    return described


def stopped_before_the_put_back(setup: Setup) -> None:
    """Run a daemon until the edit's result is about to be fetched, and kill it there: the
    edit is made (and paid for), the cleaned sound not yet put back."""
    crashed = setup.daemon(env={"CVSYNCD_FAILPOINTS": "fetch.planned"})
    assert crashed.proc.wait(timeout=120) == -9, crashed.log_text
    crashed.kill()


def settled(daemon: DaemonProcess, name: str, timeout: float = 60) -> None:
    """Wait until the job of ``name`` was retried or failed (whichever the code does)."""
    daemon.wait_for(
        lambda: daemon.count("job.retry", path=name) + daemon.count("job.failed", path=name) > 0,
        timeout,
        f"job.retry or job.failed for {name}",
    )


def ffmpeg_cannot_start(tmp_path: Path) -> dict[str, str]:
    """The environment of a daemon whose ffmpeg is found but cannot be run (a real exec
    failure: its interpreter is missing); its ffprobe is the real one."""
    broken = tmp_path / "broken-bin"
    broken.mkdir(exist_ok=True)
    if not (broken / "ffmpeg").exists():
        (broken / "ffmpeg").write_text("#!/nonexistent/interpreter\n")
        (broken / "ffmpeg").chmod(0o755)
        assert FFPROBE
        (broken / "ffprobe").symlink_to(FFPROBE)
    return {"PATH": f"{broken}{os.pathsep}{os.environ['PATH']}"}


def test_an_ffmpeg_that_fails_during_the_put_back_keeps_the_paid_edit(
    tmp_path: Path, emulator: Emulator
) -> None:
    """ffmpeg cannot run while the cleaned sound is put back (a real exec failure: its
    interpreter is missing). That is local trouble, not the edit's: the job waits and
    retries with a message that says so, the edit is not marked unusable, nothing is sent
    again, and once ffmpeg works the job finishes from the same edit."""
    setup = Setup(
        tmp_path,
        emulator.base_url,
        after="keep",
        preset=ENHANCE_ONLY,
        extra_daemon="retry_initial_seconds = 0.5\nretry_max_seconds = 1",
    )
    video = drop_video(setup)
    stopped_before_the_put_back(setup)
    [job] = setup.jobs()
    edit_id = shown(setup, job["id"])["edit_id"]
    assert edit_id and len(creates(emulator)) == 1

    daemon = setup.daemon(env=ffmpeg_cannot_start(tmp_path))
    try:
        settled(daemon, "ep.mp4")
        # tried again, not given up on: a second try fails the same way and still waits
        daemon.wait_for(lambda: daemon.count("job.retry", path="ep.mp4") >= 2, 30, "a 2nd try")
    finally:
        assert daemon.stop() == 0
    assert daemon.count("job.failed") == 0, daemon.log_text
    described = shown(setup, job["id"])
    assert described["state"] == "fetching" and described["edit_id"] == edit_id
    assert not described["facts"].get("edit_unusable")
    assert described["facts"]["video_upload"]["mode"] == "audio"  # not switched to "full"
    error = described["error"]
    assert "cannot run" in error and "ffmpeg" in error and str(setup.outbox / "ep.mp4") in error
    assert "already paid for) is kept" in error
    assert not (setup.outbox / "ep.mp4").exists() and not leftovers(setup)

    daemon = setup.daemon()  # ffmpeg works again
    try:
        daemon.wait_for_event("job.done", path="ep.mp4", timeout=120)
    finally:
        assert daemon.stop() == 0
    assert len(creates(emulator)) == 1  # finished from the same edit: nothing billed again
    assert shown(setup, job["id"])["edit_id"] == edit_id
    assert_sound_replaced(video, setup.outbox / "ep.mp4")
    assert not leftovers(setup)


def test_an_original_deleted_during_the_edit_fails_once_and_a_retry_uses_the_same_edit(
    tmp_path: Path, emulator: Emulator
) -> None:
    """The original video is moved away while its sound is at Cleanvoice: the job fails
    once saying that the original is needed for the put-back (not that it vanished before
    an upload), keeping its edit; put back, `cvsyncd retry` fetches the same edit again."""
    setup = Setup(tmp_path, emulator.base_url, after="keep", preset=ENHANCE_ONLY)
    (setup.inbox / ".DS_Store").write_bytes(b"\0")  # not an emptied inbox (that would wait)
    video = drop_video(setup)
    stopped_before_the_put_back(setup)
    [job] = setup.jobs()
    edit_id = shown(setup, job["id"])["edit_id"]
    kept = tmp_path / "elsewhere.mp4"
    os.rename(video, kept)

    daemon = setup.daemon()
    try:
        settled(daemon, "ep.mp4")
        described = shown(setup, job["id"])
        assert described["state"] == "failed", described["error"]
        error = described["error"]
        assert f"the original video {video} is needed to put the cleaned sound" in error
        assert "is gone" in error and f"cvsyncd retry {job['id']}" in error
        assert "before it was uploaded" not in error
        assert daemon.count("job.retry", path="ep.mp4") == 0  # failed once, no loop

        os.rename(kept, video)  # the user puts it back (a new change time: not the same stat)
        proc = setup.cli("retry", "-c", str(setup.config), str(job["id"]))
        assert proc.returncode == 0, proc.stderr
        assert "not submitted (or paid for) again" in proc.stdout
        daemon.wait_for_event("job.done", path="ep.mp4", timeout=120)
    finally:
        assert daemon.stop() == 0
    assert len(creates(emulator)) == 1 and len(uploads(emulator)) == 1
    assert shown(setup, job["id"])["edit_id"] == edit_id
    assert_sound_replaced(video, setup.outbox / "ep.mp4")
    assert not leftovers(setup)


def test_an_original_replaced_during_the_edit_fails_once_and_a_retry_uses_the_same_edit(
    tmp_path: Path, emulator: Emulator
) -> None:
    """A new take replaces the original video while its sound is at Cleanvoice: the job
    fails once (it is not retried over and over, downloading the sound each time), saying
    the original was replaced; the new take is a recording of its own. With a copy of the
    original put back, `cvsyncd retry` fetches the same edit again: no new upload of it."""
    setup = Setup(tmp_path, emulator.base_url, after="keep", preset=ENHANCE_ONLY)
    video = drop_video(setup)
    stopped_before_the_put_back(setup)
    [job] = setup.jobs()
    edit_id = shown(setup, job["id"])["edit_id"]
    copy = tmp_path / "copy.mp4"
    shutil.copy2(video, copy)  # the user's own copy of the original
    take = make_video(setup.root / "made" / "take2.mp4", size="160x120")
    os.replace(take, video)

    daemon = setup.daemon()
    try:
        settled(daemon, "ep.mp4")
        described = shown(setup, job["id"])
        assert described["state"] == "failed", described["error"]
        error = described["error"]
        assert f"the original video {video} is needed to put the cleaned sound" in error
        assert "was replaced by another file" in error and f"cvsyncd retry {job['id']}" in error
        daemon.wait_for_event("job.done", path="ep.mp4", timeout=120)  # the new take's job
        assert daemon.count("job.retry", path="ep.mp4") == 0  # failed once, no loop
        [new_take] = [j for j in setup.jobs() if j["id"] != job["id"]]
        assert new_take["state"] == "done"
        assert len(creates(emulator)) == 2  # the first edit, and the new take's own
        note = (setup.inbox / "failed" / "ep.mp4.error.txt").read_text()
        assert "a newer one replaced it" in note and "put it back" in note
        assert "does not pay for it again" in note and "it is not retried" not in note

        new_take_out = (setup.outbox / "ep.mp4").read_bytes()
        os.replace(copy, video)  # the original's content is back under its name
        proc = setup.cli("retry", "-c", str(setup.config), str(job["id"]))
        assert proc.returncode == 0, proc.stderr
        assert "not submitted (or paid for) again" in proc.stdout
        daemon.wait_for(
            lambda: shown(setup, job["id"])["state"] == "done", 120, "the first job done"
        )
    finally:
        assert daemon.stop() == 0
    assert len(creates(emulator)) == 2 and len(uploads(emulator)) == 2  # none for the retry
    described = shown(setup, job["id"])
    assert described["edit_id"] == edit_id
    [out] = [Path(o["path"]) for o in described["outputs"] if o["path"].endswith(".mp4")]
    assert_sound_replaced(video, out)
    assert out != setup.outbox / "ep.mp4"  # the new take's output is left as it was
    assert (setup.outbox / "ep.mp4").read_bytes() == new_take_out
    assert not leftovers(setup)


def test_a_put_back_that_never_works_ends_when_the_edit_expires(tmp_path: Path) -> None:
    """Retried local trouble is bounded: once Cleanvoice's retention has run out, the cleaned
    sound cannot be fetched again, and the job fails saying so (not retried forever)."""
    emulator = Emulator(
        tmp_path / "emulator", api_key=EMULATOR_KEY, processing_seconds=0.5, retention_seconds=8
    )
    emulator.start()
    try:
        setup = Setup(
            tmp_path,
            emulator.base_url,
            after="keep",
            preset=ENHANCE_ONLY,
            extra_daemon="retry_initial_seconds = 0.5\nretry_max_seconds = 1",
        )
        setup.config.write_text(
            setup.config.read_text().replace(
                'api_key_file = "api_key"', 'api_key_file = "api_key"\nretention_seconds = 8'
            )
        )
        drop_video(setup, extra_audio=False, subtitles=False)
        stopped_before_the_put_back(setup)
        daemon = setup.daemon(env=ffmpeg_cannot_start(tmp_path))
        try:
            daemon.wait_for_event("job.failed", path="ep.mp4", timeout=60)
        finally:
            assert daemon.stop() == 0
        assert daemon.count("job.retry", path="ep.mp4") >= 1  # retried while it could help
        [job] = setup.jobs()
        assert "expired at Cleanvoice" in job["error"], job["error"]
        assert len(creates(emulator)) == 1 and not (setup.outbox / "ep.mp4").exists()
    finally:
        emulator.stop()
