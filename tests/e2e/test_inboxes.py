"""Real-world inboxes with real writers: rsync, cp, trickling and preallocating writers,
mv of files and folders, polling mode, a vanishing inbox, multi-track sessions,
.cvsyncd.toml overrides, bad inputs, odd names and a config reload. Each asserts from the
emulator's log: one create-edit per recording, the uploaded bytes equal to the final
file, nothing for ignored or bad files."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cvsyncd.emulator import Emulator, FaultSettings
from tests.conftest import EMULATOR_KEY, DaemonProcess, Setup, creates, make_wav

pytestmark = pytest.mark.e2e


def uploads(emulator: Emulator) -> list[int]:
    return [
        r["bytes_in"] for r in emulator.requests() if r["endpoint"] == "put" and r["status"] == 200
    ]


def done_count(daemon: DaemonProcess) -> int:
    return sum(e.get("event") == "job.done" for e in daemon.events())


def run_until_done(
    setup: Setup,
    action: Callable[[], object],
    count: int = 1,
    timeout: float = 60,
    env: dict[str, str] | None = None,
) -> DaemonProcess:
    daemon = setup.daemon(env=env)
    try:
        daemon.wait_for_event("daemon.started")  # logged once the observers are up
        action()
        daemon.wait_for(lambda: done_count(daemon) >= count, timeout=timeout, what=f"{count} done")
        daemon.stays(
            lambda: daemon.count("job.queued") == count,
            1.0,
            "a second take would be queued one settle window (0.5 s) after the file changed",
        )
    finally:
        assert daemon.stop() == 0
    return daemon


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed")
def test_rsync_into_the_inbox(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep")
    source = tmp_path / "laptop" / "season 1"
    recording = make_wav(source / "ep1.wav", seconds=5)
    make_wav(source / "ep2.wav", seconds=3, freq=600)

    def sync() -> None:
        subprocess.run(
            ["rsync", "-a", "--bwlimit=200", f"{tmp_path / 'laptop'}/", f"{setup.inbox}/"],
            check=True,
            timeout=60,
        )

    run_until_done(setup, sync, count=2)
    assert len(creates(emulator)) == 2
    assert sorted(uploads(emulator)) == sorted(
        [recording.stat().st_size, (source / "ep2.wav").stat().st_size]
    )
    # rsync's temp names (.ep1.wav.XXXXXX) never became jobs
    assert sorted(j["name"] for j in setup.jobs()) == ["season 1/ep1.wav", "season 1/ep2.wav"]


def test_cp_of_a_large_file(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep")
    big = make_wav(tmp_path / "big.wav", seconds=600)  # ~19 MB
    run_until_done(setup, lambda: subprocess.run(["cp", str(big), str(setup.inbox)], check=True))
    assert len(creates(emulator)) == 1
    assert uploads(emulator) == [big.stat().st_size]
    assert (setup.outbox / "big.wav").read_bytes() == big.read_bytes()


def test_preallocated_then_filled_and_reopened_files(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep")
    content = make_wav(tmp_path / "c.wav", seconds=8).read_bytes()
    target = setup.inbox / "recorder.wav"

    def recorder() -> None:
        # a field recorder: the whole size reserved first, then filled, closed and reopened
        fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o644)
        os.posix_fallocate(fd, 0, len(content))
        os.close(fd)
        step = len(content) // 6
        for i in range(6):
            with open(target, "r+b") as f:
                f.seek(i * step)
                f.write(content[i * step : (i + 1) * step if i < 5 else len(content)])
            time.sleep(0.2)  # shorter than the settle window

    run_until_done(setup, recorder)
    assert len(creates(emulator)) == 1
    assert (setup.outbox / "recorder.wav").read_bytes() == content  # not a file of zeros


def test_mv_of_a_folder_and_odd_names(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="move")
    staging = tmp_path / "staging" / "show"
    names = [
        "ep 1 (final).wav",
        "épisode ünïcode ✓.wav",
        "-leading-dash.wav",
        "new\nline.wav",
        ("x" * 230) + ".wav",
        "deep/er/and/deeper/still/ep.wav",
    ]
    for i, name in enumerate(names):
        make_wav(staging / name, seconds=0.5, freq=200 + 40 * i)

    run_until_done(
        setup, lambda: shutil.move(str(staging), str(setup.inbox / "show")), count=len(names)
    )
    assert len(creates(emulator)) == len(names)
    outputs = sorted(p.name for p in setup.outbox.rglob("*.cleanvoice.json"))
    assert len(outputs) == len(names)
    assert all(len(n.encode()) <= 255 for n in outputs)
    for name in names:
        assert (setup.inbox / "done" / "show" / name).exists()


def test_polling_mode_inbox(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep", extra_folder='watch = "poll"')
    daemon = run_until_done(setup, lambda: make_wav(setup.inbox / "polled.wav"))
    watching = next(e for e in daemon.events() if e.get("event") == "inbox.watching")
    assert watching["mode"] == "poll"
    assert len(creates(emulator)) == 1


def test_an_inbox_that_vanishes_pauses_its_folder(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep")
    for i in range(3):
        make_wav(setup.inbox / f"ep{i}.wav", freq=300 + 50 * i)
    daemon = setup.daemon()
    try:
        daemon.wait_for(lambda: done_count(daemon) == 3, what="three done")
        aside = tmp_path / "unmounted"
        setup.inbox.rename(aside)  # the share goes away
        daemon.wait_for_event("inbox.unavailable")
        daemon.wait_for(
            lambda: "folder inbox paused" in setup.cli("status", "-c", str(setup.config)).stdout,
            timeout=10,
            what="status shows the paused folder",
        )
        make_wav(aside / "new.wav", freq=900)  # written on the server meanwhile
        aside.rename(setup.inbox)  # and it is back, with everything
        daemon.wait_for_event("inbox.back")
        daemon.wait_for(lambda: done_count(daemon) == 4, what="the new file done")
        daemon.stays(
            lambda: daemon.count("job.queued") == 4,
            1.5,
            "the rescan after the inbox came back ran before the new file was done",
        )
    finally:
        assert daemon.stop() == 0
    assert len(creates(emulator)) == 4  # the old files were not taken again


def test_a_multitrack_session(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(
        tmp_path,
        emulator.base_url,
        after="move",
        preset="normalize = true\nmerge = true",
        extra_folder="multitrack = true\nmultitrack_settle_seconds = 30",
    )
    session = tmp_path / "staging" / "session-3"
    ana = make_wav(session / "ana.wav", seconds=2, freq=300).read_bytes()
    ben = make_wav(session / "ben.wav", seconds=2, freq=500).read_bytes()

    def deliver() -> None:
        shutil.move(str(session), str(setup.inbox / "session-3"))
        time.sleep(0.5)
        (setup.inbox / "session-3" / ".ready").touch()  # the recorder says it is complete

    run_until_done(setup, deliver, timeout=40)
    [made] = creates(emulator)
    assert len(made["files"]) == 2
    out = setup.outbox / "session-3"
    assert (out / "ana.wav").read_bytes() == ana  # the cleaned tracks
    assert (out / "ben.wav").read_bytes() == ben
    assert (out / "session-3.wav").exists()  # the mix
    assert (out / "session-3.cleanvoice.json").exists()
    assert (setup.inbox / "done" / "session-3" / "ana.wav").exists()
    assert not (setup.inbox / "session-3").exists()
    [job] = setup.jobs()
    assert job["inputs"] == ["session-3/ana.wav", "session-3/ben.wav"]


def session_setup(tmp_path: Path, base_url: str, after: str) -> tuple[Setup, Path]:
    """A multi-track folder, and a session "sess" of two tracks and its ``.ready`` marker
    staged outside the inbox (moved in by the test): the Setup and the staged folder."""
    setup = Setup(
        tmp_path,
        base_url,
        after=after,
        preset="normalize = true\nmerge = true",
        extra_folder="multitrack = true\nmultitrack_settle_seconds = 2",
    )
    staging = tmp_path / "staging" / "sess"
    make_wav(staging / "ana.wav", seconds=2, freq=300)
    make_wav(staging / "ben.wav", seconds=2, freq=500)
    (staging / ".ready").touch()
    return setup, staging


def test_a_track_added_to_a_taken_session_stays_in_the_inbox_and_is_taken_after(
    tmp_path: Path, emulator: Emulator
) -> None:
    setup, staging = session_setup(tmp_path, emulator.base_url, "move")
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("daemon.started")
        assert setup.cli("pause", "-c", str(setup.config)).returncode == 0
        shutil.move(str(staging), str(setup.inbox / "sess"))
        daemon.wait_for_event("job.queued", path="sess", tracks=2)
        # a third speaker's track arrives after the session was taken (its job waits)
        cal = make_wav(tmp_path / "staging" / "cal.wav", seconds=2, freq=700)
        cal.rename(setup.inbox / "sess" / "cal.wav")
        # the watcher looks at the changed session (settled in 0.5 s with its marker):
        # its job is not submitted yet, so it is that job's, and no second job is made
        daemon.stays(lambda: daemon.count("job.queued") == 1, 4, "a second job was made")
        assert setup.cli("resume", "-c", str(setup.config)).returncode == 0
        left = daemon.wait_for_event("job.session_left", path="sess")
        assert left["left"] == ["cal.wav"]
        daemon.wait_for_event("job.done", path="sess")
        # the leftover is not lost: once it settles (no marker now), it is a recording
        daemon.wait_for_event("job.queued", path="sess", tracks=1, timeout=30)
        daemon.wait_for(lambda: done_count(daemon) == 2, what="the leftover track done")
    finally:
        assert daemon.stop() == 0
    first, second = creates(emulator)
    assert (len(first["files"]), len(second["files"])) == (2, 1)
    done = setup.inbox / "done"
    assert sorted(os.listdir(done / "sess")) == [".ready", "ana.wav", "ben.wav"]
    assert os.listdir(done / "sess (2)") == ["cal.wav"]
    jobs = sorted(setup.jobs(), key=lambda j: int(j["id"]))
    assert [j["inputs"] for j in jobs] == [["sess/ana.wav", "sess/ben.wav"], ["sess/cal.wav"]]
    shown = setup.cli("show", "-c", str(setup.config), str(jobs[0]["id"])).stdout
    [ended] = [line for line in shown.splitlines() if " done " in line]
    assert "cal.wav" in ended and "not processed" in ended, shown


def test_a_track_added_while_its_session_is_at_cleanvoice_is_billed_alone(
    tmp_path: Path,
) -> None:
    """The session's edit is already made when a third track arrives: a second job takes
    that track only, never the two that are being paid for already."""
    with Emulator(tmp_path / "emulator", api_key=EMULATOR_KEY, processing_seconds=10) as emu:
        setup, staging = session_setup(tmp_path, emu.base_url, "move")
        daemon = setup.daemon()
        try:
            daemon.wait_for_event("daemon.started")
            shutil.move(str(staging), str(setup.inbox / "sess"))
            daemon.wait_for_event("job.submitted", path="sess")
            cal = make_wav(tmp_path / "staging" / "cal.wav", seconds=2, freq=700)
            cal.rename(setup.inbox / "sess" / "cal.wav")
            later = daemon.wait_for_event("job.queued", path="sess", tracks=1, timeout=30)
            # taken while the first edit was still being made (10 s): the case under test
            assert done_count(daemon) == 0, "the session was done before the track came"
            daemon.wait_for(lambda: done_count(daemon) == 2, what="both jobs done")
        finally:
            assert daemon.stop() == 0
        made = creates(emu)
    assert [len(c["files"]) for c in made] == [2, 1]
    jobs = sorted(setup.jobs(), key=lambda j: int(j["id"]))
    assert [j["inputs"] for j in jobs] == [["sess/ana.wav", "sess/ben.wav"], ["sess/cal.wav"]]
    assert later["job"] == jobs[1]["id"]
    assert sorted(os.listdir(setup.inbox / "done" / "sess (2)")) == ["cal.wav"]


def test_a_session_whose_track_changed_is_taken_again_whole(
    tmp_path: Path, emulator: Emulator
) -> None:
    """A track re-exported into a finished session (new content, same name): the session is
    new again, all its tracks together, as one multi-track edit."""
    setup, staging = session_setup(tmp_path, emulator.base_url, "keep")
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("daemon.started")
        shutil.move(str(staging), str(setup.inbox / "sess"))
        daemon.wait_for_event("job.done", path="sess")
        again = make_wav(tmp_path / "staging" / "ben.wav", seconds=2, freq=650)
        again.rename(setup.inbox / "sess" / "ben.wav")
        daemon.wait_for_event("job.queued", path="sess", tracks=2, timeout=30)
        daemon.wait_for(lambda: done_count(daemon) == 2, what="the session done again")
    finally:
        assert daemon.stop() == 0
    assert [len(c["files"]) for c in creates(emulator)] == [2, 2]


def test_cvsyncd_toml_overrides_and_holds_a_broken_subtree(
    tmp_path: Path, emulator: Emulator
) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep")
    (setup.inbox / "interviews").mkdir()
    (setup.inbox / "interviews" / ".cvsyncd.toml").write_text("transcription = true\n")
    (setup.inbox / "broken").mkdir()
    (setup.inbox / "broken" / ".cvsyncd.toml").write_text("filers = true\n")
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("daemon.started")
        make_wav(setup.inbox / "interviews" / "a.wav", freq=310)
        make_wav(setup.inbox / "broken" / "b.wav", freq=320)
        daemon.wait_for_event("job.done", path="interviews/a.wav")
        held = daemon.wait_for_event(
            "inbox.override_broken",
            path="broken/b.wav",
        )
        assert any("did you mean" in p for p in held["problems"])
        (setup.inbox / "broken" / ".cvsyncd.toml").write_text("fillers = false\n")
        daemon.wait_for_event("job.done", path="broken/b.wav")
    finally:
        assert daemon.stop() == 0
    configs = {r["files"][0].rsplit("/", 1)[-1]: r["config"] for r in creates(emulator)}
    assert configs["a.wav"] == {"fillers": True, "long_silences": True, "transcription": True}
    assert configs["b.wav"] == {"fillers": False, "long_silences": True}


def test_bad_inputs_each_get_an_answer(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="move")
    target = make_wav(tmp_path / "real.wav")
    emulator.set_faults(
        FaultSettings(
            rate=1.0, kinds=frozenset({"slow"}), endpoints=frozenset({"upload"}), slow_seconds=1.5
        )
    )
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("daemon.started")
        (setup.inbox / "empty.wav").write_bytes(b"")
        (setup.inbox / "notes.txt").write_text("show notes")
        (setup.inbox / "fake.mp3").write_text("<html>not audio</html>" * 20)
        (setup.inbox / "link.wav").symlink_to(target)
        make_wav(setup.inbox / "vanishing.wav", freq=777)
        daemon.wait_for_event("job.uploading", path="vanishing.wav")
        (setup.inbox / "vanishing.wav").unlink()  # deleted while being taken
        daemon.wait_for_event("job.failed", path="vanishing.wav")
        daemon.wait_for_event("job.failed", path="fake.mp3")
        daemon.wait_for_event("inbox.empty_file", path="empty.wav")
        daemon.wait_for(
            lambda: any(
                e.get("event") == "inbox.not_taken" and "symbolic link" in e.get("reason", "")
                for e in daemon.events()
            ),
            what="the symlink explained",
        )
        daemon.wait_for_event(
            "inbox.not_taken",
            reason=(
                ".txt is not among the folder's extensions (mp3, wav, m4a, flac, aiff, aif, "
                "mp4, mov, mkv, webm, avi)"
            ),
        )
    finally:
        assert daemon.stop() == 0
    assert creates(emulator) == []
    jobs = {j["name"]: j for j in setup.jobs()}
    assert set(jobs) == {"vanishing.wav", "fake.mp3"}
    assert "disappeared" in jobs["vanishing.wav"]["error"]
    assert "not an audio or video file" in jobs["fake.mp3"]["error"]
    assert (setup.inbox / "failed" / "fake.mp3").exists()
    assert (setup.inbox / "failed" / "fake.mp3.error.txt").exists()
    assert (setup.inbox / "link.wav").is_symlink() and target.exists()


def test_reload_adds_a_folder_and_keeps_running_on_a_broken_config(
    tmp_path: Path, emulator: Emulator
) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep")
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("daemon.started")
        good = setup.config.read_text()
        setup.config.write_text(good.replace('after = "keep"', 'after = "kept"'))
        daemon.wait_for_event("config.rejected")
        (tmp_path / "second").mkdir()
        (tmp_path / "out2").mkdir()
        setup.config.write_text(
            good + '\n[[folders]]\ninbox = "second"\noutbox = "out2"\npreset = "podcast"\n'
        )
        daemon.wait_for_event("config.reloaded")
        daemon.wait_for_event("inbox.watching", folder="second")
        make_wav(tmp_path / "second" / "late.wav")
        daemon.wait_for_event("job.done", path="late.wav")
    finally:
        assert daemon.stop() == 0
    assert (tmp_path / "out2" / "late.wav").exists()


def test_sighup_reloads(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep")
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("daemon.started")
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_for_event("config.reloaded")
    finally:
        assert daemon.stop() == 0
