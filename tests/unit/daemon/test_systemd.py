"""The sd_notify protocol, against a real datagram socket standing in for systemd."""

from __future__ import annotations

import os
import socket
import sys
import time
import types
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from cvsyncd.daemon.systemd import Notifier, status_line


class Listener:
    """A bound AF_UNIX datagram socket, as systemd's notify socket is."""

    def __init__(self, address: str):
        self.address = address  # as it goes into $NOTIFY_SOCKET
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(2)

    def receive(self) -> str:
        return self.sock.recv(4096).decode("utf-8")

    def nothing_waiting(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(4096)
        except BlockingIOError:
            return True
        finally:
            self.sock.settimeout(2)
        return False


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    path = tmp_path / "notify"
    assert len(str(path)) < 100, "an AF_UNIX path must fit in sun_path"
    server = Listener(str(path))
    yield server
    server.sock.close()


@pytest.fixture
def abstract_listener() -> Iterator[Listener]:
    server = Listener(f"@cvsyncd-test-{uuid.uuid4().hex}")
    yield server
    server.sock.close()


def env_for(listener: Listener, **more: str) -> dict[str, str]:
    return {"NOTIFY_SOCKET": listener.address, **more}


def test_ready_status_stopping_are_sent_as_datagrams(listener: Listener) -> None:
    notifier = Notifier.from_environment(env_for(listener))
    assert notifier.enabled
    assert notifier.ready()
    assert listener.receive() == "READY=1"
    assert notifier.status("2 uploading, 1 processing")
    assert listener.receive() == "STATUS=2 uploading, 1 processing"
    assert notifier.stopping("finishing 2 uploads")
    assert listener.receive() == "STOPPING=1\nSTATUS=finishing 2 uploads"
    assert notifier.ready(status="idle")
    assert listener.receive() == "READY=1\nSTATUS=idle"


def test_a_status_stays_on_one_line(listener: Listener) -> None:
    notifier = Notifier.from_environment(env_for(listener))
    notifier.status("paused:\nno credits\nREADY=1")
    assert listener.receive() == "STATUS=paused: no credits READY=1"


def test_reloading_carries_the_monotonic_clock(listener: Listener) -> None:
    notifier = Notifier.from_environment(env_for(listener))
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = listener.receive().split("\n")
    assert first == "RELOADING=1"
    name, _, value = second.partition("=")
    assert name == "MONOTONIC_USEC" and before <= int(value) <= after


def test_an_abstract_socket(abstract_listener: Listener) -> None:
    notifier = Notifier.from_environment(env_for(abstract_listener))
    assert notifier.ready()
    assert abstract_listener.receive() == "READY=1"


def test_the_watchdog_pings_at_half_its_period(listener: Listener) -> None:
    env = env_for(listener, WATCHDOG_USEC="60000000", WATCHDOG_PID=str(os.getpid()))
    notifier = Notifier.from_environment(env)
    assert notifier.watchdog_interval() == 30.0
    assert notifier.watchdog_ping()
    assert listener.receive() == "WATCHDOG=1"


def test_the_watchdog_without_a_pid_is_ours(listener: Listener) -> None:
    notifier = Notifier.from_environment(env_for(listener, WATCHDOG_USEC="10000000"))
    assert notifier.watchdog_interval() == 5.0


def test_a_watchdog_meant_for_another_process_is_off(listener: Listener) -> None:
    env = env_for(listener, WATCHDOG_USEC="60000000", WATCHDOG_PID=str(os.getpid() + 1))
    notifier = Notifier.from_environment(env)
    assert notifier.watchdog_interval() is None
    assert not notifier.watchdog_ping()
    assert listener.nothing_waiting()
    # the pid can be given, as for a process that was started by the main one
    assert Notifier.from_environment(env, pid=os.getpid() + 1).watchdog_interval() == 30.0


@pytest.mark.parametrize("usec", ["", "0", "-5", "soon"])
def test_a_watchdog_without_a_usable_period_is_off(listener: Listener, usec: str) -> None:
    notifier = Notifier.from_environment(env_for(listener, WATCHDOG_USEC=usec))
    assert notifier.watchdog_interval() is None


def test_without_notify_socket_nothing_happens() -> None:
    notifier = Notifier.from_environment({"WATCHDOG_USEC": "60000000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval() is None
    for call in (notifier.ready, notifier.reloading, notifier.stopping, notifier.watchdog_ping):
        assert call() is False
    assert notifier.status("idle") is False


def test_a_dead_socket_is_logged_and_never_raises(tmp_path: Path) -> None:
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.enabled
    with structlog.testing.capture_logs() as logs:
        assert notifier.ready() is False
        assert notifier.status("still here") is False
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert len(warnings) == 1  # a run of failures is logged once
    assert warnings[0]["notification"] == "READY"


def test_notifying_works_again_after_the_socket_returns(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": str(path)})
    assert notifier.ready() is False
    server = Listener(str(path))  # systemd (re)creates its socket
    try:
        with structlog.testing.capture_logs() as logs:
            assert notifier.ready()
        assert server.receive() == "READY=1"
        assert [entry["event"] for entry in logs] == ["systemd.back"]
    finally:
        server.sock.close()


def test_an_unusable_address_turns_notifications_off() -> None:
    with structlog.testing.capture_logs() as logs:
        notifier = Notifier.from_environment({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not notifier.enabled and notifier.ready() is False
    assert logs[0]["log_level"] == "warning"


def test_the_process_environment_is_the_default(
    monkeypatch: pytest.MonkeyPatch, listener: Listener
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", listener.address)
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    notifier = Notifier.from_environment()
    assert notifier.watchdog_interval() == 10.0
    assert notifier.watchdog_ping()
    assert listener.receive() == "WATCHDOG=1"
    assert os.environ["NOTIFY_SOCKET"] == listener.address  # read, never changed


def test_a_stand_in_systemd_daemon_module_is_used_when_importable(
    monkeypatch: pytest.MonkeyPatch, listener: Listener
) -> None:
    # systemd-python is not installed here; this stand-in has its notify() signature and
    # sends as sd_notify does, to $NOTIFY_SOCKET of the process environment
    sent: list[str] = []

    def notify(status: str, unset_environment: bool = False) -> bool:
        sent.append(status)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(status.encode(), os.environ["NOTIFY_SOCKET"])
        return True

    package = types.ModuleType("systemd")
    daemon = types.ModuleType("systemd.daemon")
    daemon.notify = notify  # type: ignore[attr-defined]
    package.daemon = daemon  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "systemd", package)
    monkeypatch.setitem(sys.modules, "systemd.daemon", daemon)
    monkeypatch.setenv("NOTIFY_SOCKET", listener.address)
    notifier = Notifier.from_environment()
    assert notifier.ready("idle")
    assert sent == ["READY=1\nSTATUS=idle"]
    assert listener.receive() == "READY=1\nSTATUS=idle"
    # with an explicit environment (as in the other tests) the built-in sender is used
    assert Notifier.from_environment(env_for(listener)).ready()
    assert sent == ["READY=1\nSTATUS=idle"] and listener.receive() == "READY=1"


def test_status_line_names_the_work_in_pipeline_order() -> None:
    counts = {"processing": 3, "uploading": 2, "needs_attention": 1, "done": 40, "failed": 2}
    assert status_line(counts, None, 2) == "2 uploading, 3 processing, 1 needs attention"
    assert status_line(counts, "no credits", 2) == (
        "2 uploading, 3 processing, 1 needs attention; paused: no credits"
    )


def test_status_line_when_idle() -> None:
    assert status_line({"done": 7, "queued": 0}, None, 2) == "idle, watching 2 folders"
    assert status_line({}, None, 1) == "idle, watching 1 folder"
    assert status_line({}, "the API key was refused", 3) == (
        "idle, watching 3 folders; paused: the API key was refused"
    )


def test_status_line_counts_held_jobs() -> None:
    # held jobs wait for the user or a budget: the line says so before the work in progress
    counts = {"held": 400, "queued": 1, "processing": 2, "done": 9}
    assert status_line(counts, None, 1) == "1 queued, 400 held, 2 processing"
