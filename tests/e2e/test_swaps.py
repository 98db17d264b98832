"""An inbox entry that turns into something else after it was taken, with the daemon as
a subprocess: a symbolic link to a private file, a FIFO, a device node, a folder, a hard
link, another file. Nothing outside the inbox is ever read, nothing blocks (SIGTERM still
ends the daemon at once), and a job only moves, deletes or renames the content it took.

The daemon is started paused (``cvsyncd pause``), so that a recording is taken (queued)
but not read again until ``cvsyncd resume``: the swap happens in between, for sure.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from pathlib import Path

import pytest

from cvsyncd.emulator import Emulator, FaultSettings
from tests.conftest import DaemonProcess, Setup, creates, make_wav, wav_bytes

pytestmark = pytest.mark.e2e

FAST = "retry_initial_seconds = 0.2\nretry_max_seconds = 1.5"


def paused_daemon(setup: Setup) -> DaemonProcess:
    assert setup.cli("pause", "-c", str(setup.config)).returncode == 0
    return setup.daemon()


def resume(setup: Setup) -> None:
    assert setup.cli("resume", "-c", str(setup.config)).returncode == 0


def stop_quickly(daemon: DaemonProcess) -> float:
    """Send SIGTERM; return how long the daemon took to end (it must end)."""
    started = time.monotonic()
    assert daemon.stop(signal.SIGTERM, timeout=20) == 0
    return time.monotonic() - started


def uploaded(emulator: Emulator) -> list[dict[str, object]]:
    return [r for r in emulator.requests() if r["endpoint"] == "put" and r["processed"]]


def swap(path: Path, kind: str, outside: Path) -> None:
    """Replace ``path`` by an entry of ``kind``."""
    path.unlink()
    if kind == "symlink":
        path.symlink_to(outside)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # what /dev/null is
    elif kind == "directory":
        path.mkdir()
    elif kind == "hardlink":
        os.link(outside, path)
    elif kind == "replaced":
        fresh = path.with_name(".fresh.tmp")
        fresh.write_bytes(outside.read_bytes())
        fresh.rename(path)


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("symlink", "is now a symbolic link"),
        ("fifo", "is now a named pipe (FIFO)"),
        ("device", "is now a device node"),
        ("directory", "is now a folder"),
    ],
)
def test_a_path_that_is_no_longer_a_regular_file_is_refused(
    tmp_path: Path, emulator: Emulator, kind: str, words: str
) -> None:
    if kind == "device" and os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    private = make_wav(tmp_path / "private" / "secret.wav", seconds=1.5, freq=99)
    setup = Setup(tmp_path, emulator.base_url, after="move", extra_daemon=FAST)
    make_wav(setup.inbox / "ep.wav")
    daemon = paused_daemon(setup)
    try:
        daemon.wait_for_event("job.queued", path="ep.wav")
        swap(setup.inbox / "ep.wav", kind, private)
        resume(setup)
        failed = daemon.wait_for_event("job.failed", path="ep.wav")
        assert words in failed["error"]
        make_wav(setup.inbox / "next.wav", freq=500)  # the daemon goes on
        daemon.wait_for_event("job.done", path="next.wav")
    finally:
        assert stop_quickly(daemon) < 10
    assert [r["filename"] for r in emulator.requests() if r["endpoint"] == "upload"] == [
        "next.wav"
    ]  # nothing of the private file left this machine
    assert len(creates(emulator)) == 1
    entry = setup.inbox / "ep.wav"
    assert os.path.lexists(entry) and not (setup.inbox / "failed" / "ep.wav").exists()
    note = (setup.inbox / "failed" / "ep.wav.error.txt").read_text()
    assert words in note and "cvsyncd retry" not in note.split("Why:")[1].split("\n\n")[1]
    assert private.read_bytes() == wav_bytes(1.5, 16000, 99, amplitude=12000)


@pytest.mark.parametrize("kind", ["hardlink", "replaced"])
def test_a_regular_file_put_in_its_place_is_taken_as_the_new_content(
    tmp_path: Path, emulator: Emulator, kind: str
) -> None:
    other = make_wav(tmp_path / "elsewhere" / "take2.wav", seconds=1.5, freq=770)
    setup = Setup(tmp_path, emulator.base_url, after="keep", extra_daemon=FAST)
    make_wav(setup.inbox / "ep.wav")
    daemon = paused_daemon(setup)
    try:
        daemon.wait_for_event("job.queued", path="ep.wav")
        swap(setup.inbox / "ep.wav", kind, other)
        resume(setup)
        daemon.wait_for_event("job.done", path="ep.wav")
    finally:
        assert stop_quickly(daemon) < 10
    [put] = uploaded(emulator)
    assert put["bytes_in"] == other.stat().st_size  # the new content, uploaded once
    assert len(creates(emulator)) == 1
    assert (setup.outbox / "ep.wav").read_bytes() == other.read_bytes()
    assert [j["state"] for j in setup.jobs()] == ["done"]


def test_fifos_left_by_a_previous_run_block_nothing(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="move", extra_daemon=FAST)
    make_wav(setup.inbox / "a.wav", freq=300)
    make_wav(setup.inbox / "b.wav", freq=400)
    first = paused_daemon(setup)
    try:
        first.wait_for_event("job.queued", path="a.wav")
        first.wait_for_event("job.queued", path="b.wav")
    finally:
        assert stop_quickly(first) < 10
    for name in ("a.wav", "b.wav"):
        (setup.inbox / name).unlink()
        os.mkfifo(setup.inbox / name)  # no writer will ever come
    make_wav(setup.inbox / "c.wav", freq=500)
    second = setup.daemon()
    try:
        resume(setup)
        second.wait_for_event("job.failed", path="a.wav")
        second.wait_for_event("job.failed", path="b.wav")
        second.wait_for_event("job.done", path="c.wav")
    finally:
        assert stop_quickly(second) < 10
    assert {j["name"]: j["state"] for j in setup.jobs()} == {
        "a.wav": "failed",
        "b.wav": "failed",
        "c.wav": "done",
    }


def test_a_job_that_fails_leaves_a_newer_take_alone(tmp_path: Path, emulator: Emulator) -> None:
    """Take 1 is being processed when take 2 replaces it; take 1 then fails at Cleanvoice.
    Take 2 must not be moved to failed/, must be processed once, and retrying job 1 (which
    would bill take 2 again) is refused."""
    emulator.set_faults(
        FaultSettings(rate=1.0, kinds=frozenset({"failure"}), endpoints=frozenset({"create"}))
    )
    setup = Setup(tmp_path, emulator.base_url, after="move", extra_daemon=FAST)
    make_wav(setup.inbox / "ep.wav", freq=300)
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.submitted", path="ep.wav")
        emulator.set_faults(FaultSettings())
        take2 = make_wav(tmp_path / "take2.wav", seconds=2, freq=900)
        os.replace(take2, setup.inbox / "ep.wav")
        daemon.wait_for_event("job.failed", path="ep.wav")
        daemon.wait_for(
            lambda: [e.get("job") for e in daemon.events() if e.get("event") == "job.done"] == [2],
            what="take 2 done as job 2",
        )
    finally:
        assert stop_quickly(daemon) < 10
    jobs = {j["id"]: j for j in setup.jobs()}
    assert jobs[1]["state"] == "failed" and jobs[2]["state"] == "done"
    assert len(creates(emulator)) == 2  # take 1 once, take 2 once
    assert not (setup.inbox / "failed" / "ep.wav").exists()
    assert (setup.inbox / "done" / "ep.wav").read_bytes() == wav_bytes(2, 16000, 900, 12000)
    note = (setup.inbox / "failed" / "ep.wav.error.txt").read_text()
    assert "a newer one replaced it" in note and "it is not retried" in note
    refused = setup.cli("retry", "-c", str(setup.config), "1")
    assert refused.returncode == 1 and "is now job 2" in refused.stderr


def test_a_job_that_succeeds_leaves_a_newer_take_alone(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="move", extra_daemon=FAST)
    make_wav(setup.inbox / "ep.wav", freq=300)
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.submitted", path="ep.wav")
        take2 = make_wav(tmp_path / "take2.wav", seconds=2, freq=900)
        os.replace(take2, setup.inbox / "ep.wav")
        daemon.wait_for(
            lambda: (
                sorted(int(e["job"]) for e in daemon.events() if e.get("event") == "job.done")
                == [1, 2]
            ),
            what="both takes done",
        )
    finally:
        assert stop_quickly(daemon) < 10
    left = [e for e in daemon.events() if e.get("event") == "job.input_replaced"]
    assert [e["job"] for e in left] == [1]
    assert len(creates(emulator)) == 2
    # take 2 was moved aside by its own job only; take 1's results and take 2's are apart
    assert (setup.inbox / "done" / "ep.wav").read_bytes() == wav_bytes(2, 16000, 900, 12000)
    assert (setup.outbox / "ep (2).wav").read_bytes() == wav_bytes(2, 16000, 900, 12000)


def test_entries_not_taken_are_listed_by_status_until_they_go(
    tmp_path: Path, emulator: Emulator
) -> None:
    outside = make_wav(tmp_path / "outside.wav")
    setup = Setup(tmp_path, emulator.base_url, after="keep", extra_daemon=FAST)
    (setup.inbox / "link.wav").symlink_to(outside)
    os.mkfifo(setup.inbox / "pipe.wav")
    (setup.inbox / "empty.wav").write_bytes(b"")
    (setup.inbox / ".rsync-temp.wav.XYZ").write_bytes(b"x")  # a copy tool's temp file
    (setup.inbox / "notes.part").write_bytes(b"x")
    daemon = setup.daemon()
    try:

        def listed() -> dict[str, str]:
            report = json.loads(setup.cli("status", "-c", str(setup.config), "--json").stdout)
            return {Path(e["path"]).name: e["reason"] for e in report["not_taken"]}

        daemon.wait_for(lambda: len(listed()) == 3, what="three entries listed")
        reasons = listed()
        assert "symbolic link" in reasons["link.wav"]
        assert "named pipe" in reasons["pipe.wav"]
        assert "empty" in reasons["empty.wav"]
        text = setup.cli("status", "-c", str(setup.config)).stdout
        assert "not taken" in text and "link.wav" in text
        (setup.inbox / "link.wav").unlink()
        (setup.inbox / "pipe.wav").unlink()
        daemon.wait_for(lambda: set(listed()) == {"empty.wav"}, what="the gone entries dropped")
    finally:
        assert stop_quickly(daemon) < 10
    assert creates(emulator) == []
