"""``cvsyncd emulator`` flags and lifecycle: the URL line, signals, clean exit."""

from __future__ import annotations

import argparse
import io
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from cvsyncd.emulator import add_arguments, run_from_args
from tests.conftest import TLS

URL_LINE = re.compile(
    r"cvsyncd emulator: serving the Cleanvoice API at (http://127\.0\.0\.1:(\d+)/v2)\n"
)
SCRIPT = (
    "import argparse, sys\n"
    "from cvsyncd.emulator import add_arguments, run_from_args\n"
    "parser = argparse.ArgumentParser()\n"
    "add_arguments(parser)\n"
    "sys.exit(run_from_args(parser.parse_args(sys.argv[1:]), sys.stdout))\n"
)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_subprocess_prints_the_url_and_stops_on_signal(tmp_path: Path, signum: int) -> None:
    command = [sys.executable, "-c", SCRIPT, "--port", "0", "--data-dir", str(tmp_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        match = URL_LINE.fullmatch(process.stdout.readline())
        assert match, "no URL line"
        answer = httpx.get(
            match[1] + "/account", headers={"X-API-Key": "cv-emulator-key"}, verify=TLS
        )
        assert answer.status_code == 200
        process.send_signal(signum)
        rest, errors = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, errors
    assert rest == ""
    [record] = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    assert record["endpoint"] == "account" and record["status"] == 200


def test_flags_reach_the_emulator(tmp_path: Path) -> None:
    args = parse(
        "--port", "0", "--data-dir", str(tmp_path), "--api-key", "k", "--error-style", "detail",
        "--fault-rate", "1", "--faults", "503", "--fault-endpoints", "account", "--credits", "2",
        "--no-rate-limits", "--seed", "3", "--processing-seconds", "0.1",
    )  # fmt: skip
    stdout, stop = io.StringIO(), threading.Event()
    worker = threading.Thread(
        target=run_from_args, args=(args, stdout), kwargs={"stop_event": stop}
    )
    worker.start()
    try:
        deadline = time.monotonic() + 5
        while not stdout.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        match = URL_LINE.fullmatch(stdout.getvalue())
        assert match
        base = match[1]
        assert httpx.get(base + "/account", headers={"X-API-Key": "k"}, verify=TLS).json() == {
            "detail": "Service temporarily unavailable (emulated fault)"
        }
        assert (
            httpx.get(
                base + "/edits/x", headers={"X-API-Key": "cv-emulator-key"}, verify=TLS
            ).status_code
            == 401
        )
    finally:
        stop.set()
        worker.join(10)
    assert not worker.is_alive()


def test_defaults() -> None:
    args = parse()
    assert (args.host, args.port, args.api_key, args.error_style) == (
        "127.0.0.1",
        8765,
        "cv-emulator-key",
        "error",
    )
    assert args.rate_limits is True and args.fault_rate == 0 and args.data_dir is None
    assert "test key" in _help()


def _help() -> str:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.format_help()


@pytest.mark.parametrize(
    "argv",
    [
        ["--faults", "explode"],
        ["--fault-endpoints", "upload,nowhere"],
        ["--fault-rate", "1.5"],
        ["--port", "-1"],
        ["--error-style", "yaml"],
        ["--processing-seconds", "soon"],
    ],
)
def test_bad_flags_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        parse(*argv)
    assert stopped.value.code == 2
    assert "error" in capsys.readouterr().err


def test_busy_port_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code = run_from_args(parse("--port", str(port), "--data-dir", str(tmp_path)), io.StringIO())
    assert code == 1 and "cannot listen" in capsys.readouterr().err
