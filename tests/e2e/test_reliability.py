"""The exactly-once promises under faults, changes, full disks and signals — the daemon as a
subprocess, the emulator injecting faults, real folders."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cvsyncd.emulator import Emulator, FaultSettings
from tests.conftest import Setup, creates, make_wav

pytestmark = pytest.mark.e2e


def fault(kind: str, endpoint: str, slow: float = 2.0) -> FaultSettings:
    return FaultSettings(
        rate=1.0, kinds=frozenset({kind}), endpoints=frozenset({endpoint}), slow_seconds=slow
    )


def test_a_lost_create_answer_needs_attention(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="move")
    recording = make_wav(setup.inbox / "ep1.wav")
    emulator.set_faults(fault("reset-after", "create"))
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.needs_attention", path="ep1.wav")
        daemon.stays(
            lambda: len(creates(emulator)) == 1,
            1.5,
            "a due job is started at the scheduler's next turn; needs_attention must never be",
        )
    finally:
        assert daemon.stop() == 0
    assert len(creates(emulator)) == 1  # Cleanvoice did create it: a retry would bill twice
    [job] = setup.jobs()
    assert job["state"] == "needs_attention"
    assert "may or may not have created" in job["error"]
    assert f"cvsyncd retry -c {setup.config} {job['id']}" in job["error"]
    assert recording.exists()  # the input waits in the inbox
    status = setup.cli("status", "-c", str(setup.config)).stdout
    assert "needs_attention" in status and "ep1.wav" in status


def test_resubmit_ambiguous_switch_resubmits(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, extra_daemon="resubmit_ambiguous = true")
    make_wav(setup.inbox / "ep1.wav")
    emulator.set_faults(fault("500-after", "create"))
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.resubmitting")
        emulator.set_faults(FaultSettings())
        daemon.wait_for_event("job.done", path="ep1.wav")
    finally:
        assert daemon.stop() == 0
    assert len(creates(emulator)) == 2  # what the user chose: possibly paying twice


def test_resubmit_ambiguous_sends_a_recording_again_once_only(
    tmp_path: Path, emulator: Emulator
) -> None:
    """A gateway that creates the edit and then always answers 500: the switch allows one
    more create, not one every few seconds."""
    setup = Setup(tmp_path, emulator.base_url, extra_daemon="resubmit_ambiguous = true")
    make_wav(setup.inbox / "ep1.wav")
    emulator.set_faults(fault("500-after", "create"))
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.needs_attention", path="ep1.wav")
        daemon.stays(
            lambda: len(creates(emulator)) == 2,
            1.5,
            "a due job is started at the scheduler's next turn; needs_attention must never be",
        )
    finally:
        assert daemon.stop() == 0
    assert daemon.count("job.resubmitting") == 1
    [job] = setup.jobs()
    assert job["state"] == "needs_attention"
    assert "already sent again once" in job["error"]
    assert f"cvsyncd retry -c {setup.config} {job['id']}" in job["error"]


def test_429_on_create_is_retried_and_creates_once(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url)
    make_wav(setup.inbox / "ep1.wav")
    emulator.set_faults(fault("429", "create"))
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.retry", path="ep1.wav", state="uploaded")
        emulator.set_faults(FaultSettings())
        daemon.wait_for_event("job.done", path="ep1.wav", timeout=60)
    finally:
        assert daemon.stop() == 0
    refused = [r for r in emulator.requests() if r["endpoint"] == "create" and r["status"] == 429]
    assert refused and len(creates(emulator)) == 1


def test_unreachable_api_is_retried_until_it_is_back(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url)
    make_wav(setup.inbox / "ep1.wav")
    emulator.stop()  # connection refused: nothing can have been sent
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.retry", path="ep1.wav")
        emulator.start()  # same port
        daemon.wait_for_event("job.done", path="ep1.wav", timeout=60)
    finally:
        assert daemon.stop() == 0
    assert len(creates(emulator)) == 1


@pytest.mark.parametrize("endpoint", ["upload", "put"])
def test_a_file_changed_before_or_during_upload_is_sent_anew(
    tmp_path: Path, emulator: Emulator, endpoint: str
) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep")
    recording = make_wav(setup.inbox / "ep1.wav", seconds=1)
    emulator.set_faults(fault("slow", endpoint, slow=2.0))
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.uploading", path="ep1.wav")
        with open(recording, "ab") as f:  # the recorder appends more audio
            f.write(os.urandom(20_000))
        final = recording.read_bytes()
        emulator.set_faults(FaultSettings())
        daemon.wait_for_event("job.done", path="ep1.wav", timeout=60)
    finally:
        assert daemon.stop() == 0
    made = creates(emulator)
    assert len(made) == 1
    puts = [r for r in emulator.requests() if r["endpoint"] == "put" and r["status"] == 200]
    assert puts[-1]["bytes_in"] == len(final)  # what was submitted is the final content
    assert (setup.outbox / "ep1.wav").read_bytes() == final
    [job] = setup.jobs()
    assert job["state"] == "done"


def test_the_same_recording_under_another_name_is_not_paid_twice(
    tmp_path: Path, emulator: Emulator
) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep")
    first = make_wav(setup.inbox / "ep1.wav")
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.done", path="ep1.wav")
        shutil.copy(first, setup.inbox / "ep1 copy.wav")
        (setup.inbox / "other").mkdir()
        shutil.copy(first, setup.inbox / "other" / "ep1.wav")
        daemon.wait_for(
            lambda: sum(e.get("event") == "job.duplicate" for e in daemon.events()) == 2,
            what="two duplicates",
        )
    finally:
        assert daemon.stop() == 0
    assert len(creates(emulator)) == 1
    jobs = {j["name"]: j for j in setup.jobs()}
    assert jobs["ep1.wav"]["state"] == "done"
    for name in ("ep1 copy.wav", "other/ep1.wav"):
        assert jobs[name]["state"] == "duplicate"
        assert jobs[name]["duplicate_of"] == jobs["ep1.wav"]["id"]
        assert "not submitted again" in jobs[name]["error"]
    assert (setup.inbox / "ep1 copy.wav").exists()  # left alone, for the user to decide
    # a deliberate retry processes it after all
    dup_id = jobs["ep1 copy.wav"]["id"]
    assert setup.cli("retry", "-c", str(setup.config), str(dup_id)).returncode == 0
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.done", path="ep1 copy.wav")
    finally:
        assert daemon.stop() == 0
    assert len(creates(emulator)) == 2
    assert (setup.outbox / "ep1 copy.wav").exists()


def test_same_content_with_another_preset_is_processed(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep", extra_folder="")
    second_inbox = tmp_path / "inbox2"
    second_inbox.mkdir()
    with open(setup.config, "a") as f:
        f.write(
            '\n[[folders]]\ninbox = "inbox2"\noutbox = "outbox2"\n'
            "preset = { transcription = true }\n"
        )
    (tmp_path / "outbox2").mkdir()
    recording = make_wav(setup.inbox / "ep1.wav")
    shutil.copy(recording, second_inbox / "ep1.wav")
    daemon = setup.daemon()
    try:
        daemon.wait_for(
            lambda: sum(e.get("event") == "job.done" for e in daemon.events()) == 2,
            what="both done",
        )
    finally:
        assert daemon.stop() == 0
    assert len(creates(emulator)) == 2
    assert sorted(j["state"] for j in setup.jobs()) == ["done", "done"]


def test_forget_lets_the_same_input_be_processed_again(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep")
    make_wav(setup.inbox / "ep1.wav")
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.done", path="ep1.wav")
    finally:
        assert daemon.stop() == 0
    [job] = setup.jobs()
    shown = setup.cli("show", "-c", str(setup.config), str(job["id"]))
    assert shown.returncode == 0
    assert "history:" in shown.stdout and "edit: " in shown.stdout
    assert "X-Amz-Signature" not in shown.stdout and "cv-test-key" not in shown.stdout
    refused = setup.cli("retry", "-c", str(setup.config), str(job["id"]))
    assert refused.returncode == 1 and "only failed" in refused.stderr
    forgot = setup.cli("forget", "-c", str(setup.config), str(job["id"]))
    assert forgot.returncode == 0 and "will be taken again" in forgot.stdout
    assert setup.jobs() == []
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.done", path="ep1.wav")
    finally:
        assert daemon.stop() == 0
    assert len(creates(emulator)) == 2
    missing = setup.cli("show", "-c", str(setup.config), "999")
    assert missing.returncode == 1 and "no job 999" in missing.stderr


def test_sigterm_lets_a_running_upload_finish(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url)
    make_wav(setup.inbox / "ep1.wav")
    emulator.set_faults(fault("slow", "put", slow=2.0))
    daemon = setup.daemon()
    daemon.wait_for_event("job.uploading", path="ep1.wav")
    started = time.monotonic()
    assert daemon.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 10
    assert "job.uploaded" in [e.get("event") for e in daemon.events()]  # finished, not cut off
    [job] = setup.jobs()
    assert job["state"] == "uploaded"  # and nothing new was started
    emulator.set_faults(FaultSettings())
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.done", path="ep1.wav")
    finally:
        assert daemon.stop() == 0
    assert len(creates(emulator)) == 1
    assert len([r for r in emulator.requests() if r["endpoint"] == "put"]) == 1  # not redone


def test_a_second_sigterm_forces_and_the_upload_is_redone(
    tmp_path: Path, emulator: Emulator
) -> None:
    setup = Setup(tmp_path, emulator.base_url)
    make_wav(setup.inbox / "ep1.wav")
    emulator.set_faults(fault("slow", "put", slow=30.0))
    daemon = setup.daemon()
    daemon.wait_for_event("job.uploading", path="ep1.wav")
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.wait_for_event("pipeline.draining")
    started = time.monotonic()
    assert daemon.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 5
    emulator.set_faults(FaultSettings())
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.upload_redo")
        daemon.wait_for_event("job.done", path="ep1.wav")
    finally:
        assert daemon.stop() == 0
    assert len(creates(emulator)) == 1


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An outbox on a 1 MiB tmpfs (needs root and mount; skipped otherwise)."""
    mount_point = tmp_path / "outbox"
    mount_point.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
            check=True,
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a small tmpfs here ({exc}); needs root and mount(8)")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, timeout=30)


def test_a_full_disk_is_not_success(tmp_path: Path, emulator: Emulator, small_disk: Path) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="move")
    recording = make_wav(setup.inbox / "long.wav", seconds=60)  # ~1.9 MB > 1 MiB
    original = recording.read_bytes()
    daemon = setup.daemon()
    try:
        retry = daemon.wait_for_event("job.retry", path="long.wav", state="fetching", timeout=60)
        assert "No space left" in retry["error"]
        assert recording.exists()  # the input stays
        assert [p.name for p in small_disk.iterdir()] == []  # nothing partial is left
        subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True, timeout=30)
        daemon.wait_for_event("job.done", path="long.wav", timeout=90)
    finally:
        assert daemon.stop() == 0
    assert (small_disk / "long.wav").read_bytes() == original
    assert (setup.inbox / "done" / "long.wav").read_bytes() == original
    assert len(creates(emulator)) == 1
