"""The daemon as a service: sd_notify over a real AF_UNIX datagram socket, the watchdog,
operator pause/resume, `cvsyncd process` and `init`, and a canary run proving that the API
key and signed-URL signatures reach no log, database, output or traceback."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from cvsyncd.daemon.supervisor import REST_SECONDS
from cvsyncd.emulator import Emulator
from tests.conftest import EMULATOR_KEY, Setup, creates, make_wav, wait_until

pytestmark = pytest.mark.e2e


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET; keeps what arrives."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def texts(self) -> list[str]:
        return [m for _, m in self.messages]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    try:
        yield sock
    finally:
        sock.close()


def test_sd_notify_ready_status_watchdog_reload_stopping(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    emulator = Emulator(tmp_path / "emulator", api_key=EMULATOR_KEY, processing_seconds=6)
    emulator.start()  # slow processing: the status line has time to show it
    setup = Setup(tmp_path, emulator.base_url, after="keep")
    daemon = setup.daemon(
        env={"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "1000000"}
    )
    try:
        wait_until(lambda: "READY=1" in notify_socket.texts(), what="READY=1")
        started = [
            e for e in daemon.events() if e.get("event") in ("inbox.watching", "daemon.started")
        ]
        assert started, "READY=1 came before the observers were started"
        assert any(t.startswith("STATUS=idle, watching 1 folder") for t in notify_socket.texts())
        make_wav(setup.inbox / "ep.wav")
        daemon.wait_for_event("job.done", path="ep.wav")
        pings = [at for at, t in notify_socket.messages if t == "WATCHDOG=1"]
        assert len(pings) >= 3 and max(b - a for a, b in itertools.pairwise(pings)) < 0.9
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(
            lambda: any(
                t.startswith("RELOADING=1\nMONOTONIC_USEC=") for t in notify_socket.texts()
            ),
            what="RELOADING=1",
        )
        wait_until(lambda: notify_socket.texts().count("READY=1") == 2, what="READY=1 again")
    finally:
        assert daemon.stop() == 0
        emulator.stop()
    assert "STOPPING=1" in notify_socket.texts()
    statuses = [t for t in notify_socket.texts() if t.startswith("STATUS=")]
    assert any("processing" in t for t in statuses)  # live counts while it was processed


def test_a_stalled_scheduler_stops_the_watchdog_pings(
    tmp_path: Path, emulator: Emulator, notify_socket: NotifySocket
) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep")
    daemon = setup.daemon(
        env={
            "NOTIFY_SOCKET": str(notify_socket.path),
            "WATCHDOG_USEC": "1000000",
            "CVSYNCD_FAILPOINTS": "scheduler.stall",
        }
    )
    try:
        daemon.wait_for_event("daemon.stuck", timeout=20)
        seen = len([t for t in notify_socket.texts() if t == "WATCHDOG=1"])
        daemon.stays(
            lambda: len([t for t in notify_socket.texts() if t == "WATCHDOG=1"]) == seen,
            2,
            "a daemon that pinged would ping every 0.5 s (half of WATCHDOG_USEC)",
        )
    finally:
        daemon.stop()


def test_operator_pause_and_resume(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep")
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("daemon.started")
        paused = setup.cli("pause", "-c", str(setup.config), "--reason", "studio maintenance")
        assert paused.returncode == 0, paused.stderr
        # at rest the supervisor turns every REST_SECONDS: the command's SIGUSR1 wakes it
        daemon.wait_for_event("operator.paused", timeout=REST_SECONDS / 2)
        make_wav(setup.inbox / "ep.wav")
        daemon.wait_for_event("job.queued", path="ep.wav")
        daemon.stays(
            lambda: daemon.count("job.uploading") == 0,
            2,
            "a job free to go starts uploading at the scheduler's next turn, within ms",
        )
        assert [j["state"] for j in setup.jobs()] == ["queued"]
        status = setup.cli("status", "-c", str(setup.config)).stdout
        assert "PAUSED by the operator (all folders): studio maintenance" in status
        assert setup.cli("resume", "-c", str(setup.config)).returncode == 0
        daemon.wait_for_event("job.done", path="ep.wav")
        wrong = setup.cli("pause", "-c", str(setup.config), "nosuchfolder")
        assert wrong.returncode == 1 and "the folders are: inbox" in wrong.stderr
    finally:
        assert daemon.stop() == 0


def test_process_runs_the_pipeline_once(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="move")
    outside = make_wav(tmp_path / "elsewhere" / "interview.wav", freq=350)
    inside = make_wav(setup.inbox / "ep.wav", freq=450)
    proc = setup.cli("process", "-c", str(setup.config), str(outside), str(inside))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "interview.wav: done" in proc.stdout and "ep.wav: done" in proc.stdout
    assert outside.exists()  # outside any inbox: never moved
    assert not inside.exists() and (setup.inbox / "done" / "ep.wav").exists()
    assert (setup.outbox / "interview.wav").exists() and (setup.outbox / "ep.wav").exists()
    assert len(creates(emulator)) == 2
    # again: nothing is paid twice
    again = setup.cli("process", "-c", str(setup.config), str(outside))
    assert again.returncode == 0 and "already known" in again.stdout
    assert len(creates(emulator)) == 2
    bad = tmp_path / "bad.wav"
    bad.write_text("no audio" * 30)
    failed = setup.cli("process", "-c", str(setup.config), str(bad))
    assert failed.returncode == 1 and "bad.wav: failed" in failed.stdout


def test_process_hands_the_work_to_a_running_daemon(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep")
    outside = make_wav(tmp_path / "elsewhere" / "x.wav")
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("daemon.started")
        proc = setup.cli("process", "-c", str(setup.config), str(outside))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "is running: it does the work" in proc.stdout
        daemon.wait_for_event("job.done", path="x.wav")
    finally:
        assert daemon.stop() == 0


def test_init_writes_a_private_starter_config(tmp_path: Path) -> None:
    target = tmp_path / "etc" / "cvsyncd.toml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CVSYNCD")}

    def init(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cvsyncd", "init", "-c", str(target), *args],
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
            timeout=60,
            cwd=tmp_path,  # a folder of the user's: no system path
        )

    assert init().returncode == 2  # nothing to ask with, nothing given
    made = init("--inbox", str(tmp_path / "in"), "--preset", "interview", "--after", "move")
    assert made.returncode == 0, made.stderr
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    check = subprocess.run(
        [sys.executable, "-m", "cvsyncd", "status", "-c", str(target)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr  # it parses
    assert init("--inbox", str(tmp_path / "in")).returncode == 1  # never overwrites


CANARY_KEY = "cvCANARYkey-7Hq2-do-not-leak"


def test_canary_key_and_signatures_never_leak(tmp_path: Path) -> None:
    emulator = Emulator(tmp_path / "emulator", api_key=CANARY_KEY, processing_seconds=0.5)
    issued: list[str] = []
    sign = emulator.signer.sign

    def recording_sign(*args, **kwargs):  # type: ignore[no-untyped-def]
        query = sign(*args, **kwargs)  # the query string of a presigned URL
        issued.extend(parse_qs(query).get("X-Amz-Signature", []))
        return query

    emulator.signer.sign = recording_sign  # type: ignore[method-assign]
    emulator.start()
    try:
        setup = Setup(
            tmp_path,
            emulator.base_url,
            after="move",
            preset="fillers = true\ntranscription = true\nexport_timestamps = true",
            extra_daemon='log_level = "debug"',
        )
        setup.key_file.write_text(CANARY_KEY + "\n")
        make_wav(setup.inbox / "ep.wav")
        (setup.inbox / "broken.wav").write_text("not audio" * 20)
        daemon = setup.daemon()
        try:
            daemon.wait_for_event("job.done", path="ep.wav")
            daemon.wait_for_event("job.failed", path="broken.wav")
        finally:
            assert daemon.stop() == 0
        shown = [
            setup.cli("show", "-c", str(setup.config), str(j["id"]), "--json").stdout
            for j in setup.jobs()
        ]
        checked = setup.cli("check", "-c", str(setup.config))
    finally:
        emulator.stop()
    assert len(issued) >= 3  # upload, download and marker URLs were signed
    texts = {
        "daemon log": daemon.log_text,
        "show": "\n".join(shown),
        "check": checked.stdout + checked.stderr,
    }
    for root in (setup.state, setup.outbox, setup.inbox):
        for path in root.rglob("*"):
            if path.is_file():
                texts[str(path)] = path.read_bytes().decode("latin-1")
    assert "debug" in json.dumps([e.get("level") for e in daemon.events()])
    for where, text in texts.items():
        assert CANARY_KEY not in text, f"the API key leaked into {where}"
        for signature in issued:
            assert signature not in text, f"a URL signature leaked into {where}"
        assert not re.search(r"X-Amz-Signature=[0-9a-f]", text), where
