"""End to end: ``cvsyncd run`` as a subprocess, real folders, a real SQLite file, the
emulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path

import pytest

from cvsyncd.emulator import Emulator, FaultSettings
from tests.conftest import EMULATOR_KEY, Setup, creates, make_wav

pytestmark = pytest.mark.e2e


def outputs_of(setup: Setup) -> list[str]:
    return sorted(
        p.relative_to(setup.outbox).as_posix() for p in setup.outbox.rglob("*") if p.is_file()
    )


def test_a_dropped_wav_comes_out_cleaned(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="move")
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("daemon.started")
        source = make_wav(tmp_path / "ep1-source.wav", seconds=2.0)
        recording = setup.inbox / "show" / "ep1.wav"
        recording.parent.mkdir()
        source.rename(recording)
        original = (setup.inbox / "show" / "ep1.wav").read_bytes()
        done = daemon.wait_for_event("job.done", path="show/ep1.wav")
    finally:
        assert daemon.stop() == 0
    # the cleaned file and its JSON, mirroring the input's path
    assert outputs_of(setup) == ["show/ep1.cleanvoice.json", "show/ep1.wav"]
    assert (setup.outbox / "show" / "ep1.wav").read_bytes() == original  # the emulator echoes
    doc = json.loads((setup.outbox / "show" / "ep1.cleanvoice.json").read_text())
    assert doc["config"] == {"fillers": True, "long_silences": True}
    assert doc["cvsyncd"]["inputs"][0]["path"] == "show/ep1.wav"
    assert doc["statistics"] and doc["result"]["download_url"].endswith("?REDACTED")
    # the input moved to done/, keeping its sub-path
    assert not recording.exists()
    assert (setup.inbox / "done" / "show" / "ep1.wav").read_bytes() == original
    assert done["moved_to"] == str(setup.inbox / "done" / "show" / "ep1.wav")
    # exactly one create-edit, for this file, with the folder's preset; edit deleted after
    made = creates(emulator)
    assert len(made) == 1
    assert made[0]["config"] == {"fillers": True, "long_silences": True}
    deletes = [r for r in emulator.requests() if r["endpoint"] == "delete" and r["processed"]]
    assert len(deletes) == 1
    jobs = setup.jobs()
    assert [(j["state"], j["inputs"]) for j in jobs] == [("done", ["show/ep1.wav"])]
    assert jobs[0]["edit_id"] == made[0]["edit_id"]


@pytest.mark.parametrize("after", ["keep", "delete"])
def test_after_keep_and_delete(tmp_path: Path, emulator: Emulator, after: str) -> None:
    setup = Setup(tmp_path, emulator.base_url, after=after)
    recording = make_wav(setup.inbox / "ep2.wav")
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.done", path="ep2.wav")
    finally:
        assert daemon.stop() == 0
    assert recording.exists() is (after == "keep")
    assert not (setup.inbox / "done").exists()
    assert outputs_of(setup) == ["ep2.cleanvoice.json", "ep2.wav"]
    assert len(creates(emulator)) == 1


def test_nothing_is_processed_again_after_a_restart(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep")
    make_wav(setup.inbox / "a.wav", freq=300)
    make_wav(setup.inbox / "sub" / "b.wav", freq=500)
    daemon = setup.daemon()
    try:
        daemon.wait_for(
            lambda: len([e for e in daemon.events() if e.get("event") == "job.done"]) == 2,
            what="two jobs done",
        )
    finally:
        assert daemon.stop() == 0
    requests_before = len(emulator.requests())
    # a second run over the same inbox (the files are still there: after = "keep")
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("daemon.started")
        daemon.stays(
            lambda: len(emulator.requests()) == requests_before,
            3,
            "the startup scan runs before `started`; a file taken again would be queued "
            "and uploaded within one settle window (0.5 s)",
        )
    finally:
        assert daemon.stop() == 0
    assert "job.queued" not in [e.get("event") for e in daemon.events()]
    assert len(emulator.requests()) == requests_before
    assert len(creates(emulator)) == 2
    assert sorted(j["state"] for j in setup.jobs()) == ["done", "done"]


def test_a_bad_file_fails_alone(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="move")
    bad = setup.inbox / "broken.wav"
    bad.write_bytes(b"this is a text file with a .wav name\n" * 50)
    make_wav(setup.inbox / "good.wav")
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.failed", path="broken.wav")
        daemon.wait_for_event("job.done", path="good.wav")
    finally:
        assert daemon.stop() == 0
    failed_input = setup.inbox / "failed" / "broken.wav"
    assert failed_input.exists() and not bad.exists()
    explanation = (setup.inbox / "failed" / "broken.wav.error.txt").read_text()
    assert "could not process broken.wav" in explanation and "cvsyncd retry" in explanation
    states = {j["name"]: j for j in setup.jobs()}
    assert states["broken.wav"]["state"] == "failed"
    assert "not an audio or video file" in states["broken.wav"]["error"]
    assert states["good.wav"]["state"] == "done"
    assert outputs_of(setup) == ["good.cleanvoice.json", "good.wav"]
    # found out locally: the bad file was never uploaded, let alone paid for
    puts = [r for r in emulator.requests() if r["endpoint"] == "put"]
    assert len(puts) == 1 and len(creates(emulator)) == 1


def test_an_edit_that_fails_at_cleanvoice_fails_the_job(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="move")
    make_wav(setup.inbox / "ep.wav")
    emulator.set_faults(
        FaultSettings(rate=1.0, kinds=frozenset({"failure"}), endpoints=frozenset({"create"}))
    )
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.failed", path="ep.wav")
    finally:
        assert daemon.stop() == 0
    [job] = setup.jobs()
    assert job["state"] == "failed"
    # the words of the answer, and its code where the answer's shape carries one
    assert job["error"].startswith(
        "Cleanvoice could not process this recording: Emulated processing failure"
    )
    assert (setup.inbox / "failed" / "ep.wav").exists()
    assert (
        "Emulated processing failure" in (setup.inbox / "failed" / "ep.wav.error.txt").read_text()
    )
    assert outputs_of(setup) == []


def test_state_database_is_real_sqlite_in_wal_mode(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep")
    make_wav(setup.inbox / "c.wav")
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.done", path="c.wav")
    finally:
        assert daemon.stop() == 0
    conn = sqlite3.connect(setup.state / "cvsyncd.sqlite3")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        rows = conn.execute("SELECT state, name FROM jobs").fetchall()
    finally:
        conn.close()
    assert rows == [("done", "c.wav")]
    # neither the key nor a signed URL's signature is in the database or the log
    data = (setup.state / "cvsyncd.sqlite3").read_bytes()
    assert EMULATOR_KEY.encode() not in data and b"X-Amz-Signature" not in data
    assert EMULATOR_KEY not in daemon.log_text and "X-Amz-Signature" not in daemon.log_text


def test_sigint_stops_the_daemon_cleanly(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url)
    daemon = setup.daemon()
    daemon.wait_for_event("daemon.started")
    assert daemon.stop(signal.SIGINT) == 0
    assert "daemon.stopped" in [e.get("event") for e in daemon.events()]


def test_a_broken_config_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    setup = Setup(tmp_path, "http://127.0.0.1:9/v2")
    setup.config.write_text(
        setup.config.read_text()
        .replace("fillers = true", "filers = true")
        .replace('after = "move"', 'after = "archive"')
    )
    for command in ("run", "check", "status"):
        proc = setup.cli(command, "-c", str(setup.config))
        assert proc.returncode == 2, (command, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert "presets.podcast.filers" in proc.stderr and "did you mean" in proc.stderr
        assert "folders[1].after" in proc.stderr and "keep" in proc.stderr
        assert str(setup.config) in proc.stderr


def test_check_passes_on_a_good_setup_and_names_what_is_wrong(
    tmp_path: Path, emulator: Emulator
) -> None:
    setup = Setup(tmp_path, emulator.base_url)
    proc = setup.cli("check", "-c", str(setup.config))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "key accepted" in proc.stdout
    # a wrong key, and an outbox that does not exist
    setup.key_file.write_text("wrong-key\n")
    setup.outbox.rmdir()
    proc = setup.cli("check", "-c", str(setup.config))
    assert proc.returncode == 1
    assert "FAIL" in proc.stdout and "refused" in proc.stdout
    assert f"mkdir -p '{setup.outbox}'" in proc.stdout
    assert "wrong-key" not in proc.stdout + proc.stderr


def test_status_and_jobs_report(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep")
    make_wav(setup.inbox / "d.wav")
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.done", path="d.wav")
        proc = setup.cli("status", "-c", str(setup.config), "--json")
        report = json.loads(proc.stdout)
        assert report["daemon_pid"] == daemon.proc.pid
        assert report["counts"] == {"done": 1}
        text = setup.cli("status", "-c", str(setup.config)).stdout
        assert f"running (pid {daemon.proc.pid})" in text and "1 done" in text
    finally:
        assert daemon.stop() == 0
    jobs = setup.jobs()
    assert set(jobs[0]) >= {"id", "state", "inputs", "edit_id", "error"}
    report = json.loads(setup.cli("status", "-c", str(setup.config), "--json").stdout)
    assert report["daemon_pid"] is None


def test_uploads_and_active_edits_stay_within_the_limits(
    tmp_path: Path, emulator: Emulator
) -> None:
    setup = Setup(
        tmp_path,
        emulator.base_url,
        after="keep",
        extra_daemon="max_concurrent_uploads = 1\nmax_active_edits = 2",
    )
    for i in range(6):
        make_wav(setup.inbox / f"ep{i}.wav", seconds=0.5, freq=200 + 50 * i)
    daemon = setup.daemon()
    try:
        daemon.wait_for(
            lambda: sum(e.get("event") == "job.done" for e in daemon.events()) == 6,
            timeout=60,
            what="six jobs done",
        )
    finally:
        assert daemon.stop() == 0
    uploads = edits = most_uploads = most_edits = 0
    for event in (e.get("event") for e in daemon.events()):
        # an upload holds its slot until its edit is being created (waiting counts too)
        uploads += {"job.uploading": 1, "job.submitting": -1}.get(str(event), 0)
        edits += {"job.submitting": 1, "job.edit_finished": -1}.get(str(event), 0)
        most_uploads, most_edits = max(most_uploads, uploads), max(most_edits, edits)
    assert most_uploads == 1
    assert most_edits == 2
    assert len(creates(emulator)) == 6
