"""Shared test helpers: WAV files, configs, the emulator, and the daemon as a subprocess."""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import signal
import ssl
import struct
import subprocess
import sys
import textwrap
import threading
import time
import wave
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cvsyncd.config import Config, DaemonSettings, Folder
from cvsyncd.config.model import CleanvoiceSettings
from cvsyncd.emulator import Emulator

REPO = Path(__file__).resolve().parent.parent  # the repository's root
EMULATOR_KEY = "cv-test-key-0123456789"


TLS = ssl.create_default_context()  # built once: httpx would build one per client (slow)


def fetch(method: str, url: str, **options: Any) -> httpx.Response:
    """Request a URL (a storage URL, say) with a fresh client holding no API key."""
    return httpx.request(method, url, verify=TLS, timeout=10, **options)


def wav_bytes(
    seconds: float = 2.0, rate: int = 16000, freq: float = 440.0, amplitude: int = 8000
) -> bytes:
    """A real mono 16-bit PCM WAV file (a sine tone), as bytes."""
    frames = b"".join(
        struct.pack("<h", int(amplitude * math.sin(2 * math.pi * freq * i / rate)))
        for i in range(int(seconds * rate))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(frames)
    return buffer.getvalue()


def adts_bytes(frames: int = 200, length: int = 120) -> bytes:
    """A real ADTS AAC stream (silent frames of ``length`` bytes, 44.1 kHz stereo), as
    bytes: mutagen reads its duration, the emulator its first bytes."""
    header = [0xFF, 0xF1, 0x50, (2 << 6) | ((length >> 11) & 3), (length >> 3) & 0xFF]
    header += [((length & 7) << 5) | 0x1F, 0xFC]
    return (bytes(header) + bytes(length - 7)) * frames


def wait_until(predicate: Callable[[], object], what: str = "", timeout: float = 30) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)  # the polling interval of a wait for a condition, not a wait itself
    raise AssertionError(f"timed out waiting for {what or predicate}")


def make_wav(path: Path, seconds: float = 1.0, freq: float = 440.0, rate: int = 16000) -> Path:
    """Write a real WAV file (a sine tone) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav_bytes(seconds, rate, freq, amplitude=12000))
    return path


def vary_seed(request: pytest.FixtureRequest) -> int:
    """A seed for the emulator's varied mode, different for every test but repeatable.

    ``CVSYNCD_TEST_VARY=N`` adds N to every seed, to run the whole suite under other
    answer shapes (``CVSYNCD_TEST_VARY=canonical`` runs it under the canonical ones).
    """
    offset = os.environ.get("CVSYNCD_TEST_VARY", "0")
    return zlib.crc32(request.node.nodeid.encode()) + (int(offset) if offset.isdigit() else 0)


@pytest.fixture
def elsewhere(tmp_path: Path) -> Iterator[Path]:
    """A folder on another filesystem than ``tmp_path`` (removed afterwards): /dev/shm is
    a tmpfs, the test folders are not. Skipped, saying so, where no such folder exists."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the test folder")
    place = shm / f"cvsyncd-test-{os.getpid()}-{tmp_path.name}"
    place.mkdir()
    try:
        yield place
    finally:
        shutil.rmtree(place)


@pytest.fixture
def emulator(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Emulator]:
    """The emulator in varied mode: every answer takes one of its documented shapes, picked
    with a seed of this test's own (docs/emulator.md, "Varied mode")."""
    canonical = os.environ.get("CVSYNCD_TEST_VARY") == "canonical"
    emu = Emulator(
        tmp_path / "emulator",
        api_key=EMULATOR_KEY,
        processing_seconds=1.0,
        vary=None if canonical else vary_seed(request),
    )
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def canonical_emulator(tmp_path: Path) -> Iterator[Emulator]:
    """The emulator answering in the canonical shape of the docs' examples only."""
    emu = Emulator(tmp_path / "emulator", api_key=EMULATOR_KEY, processing_seconds=1.0)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


def one_folder_config(tmp_path: Path, **folder: Any) -> Config:
    """A config (objects, no file) of one folder below ``tmp_path``: inbox made, an
    unreachable API, state in ``tmp_path/state``; ``folder`` overrides Folder fields."""
    inbox = tmp_path / "inbox"
    inbox.mkdir(exist_ok=True)
    fields: dict[str, Any] = {
        "inbox": inbox,
        "outbox": tmp_path / "outbox",
        "preset": None,
        "options": {"fillers": True},
        "after": "keep",
        "done_dir": inbox / "done",
        "failed_dir": inbox / "failed",
        **folder,
    }
    return Config(
        path=tmp_path / "cvsyncd.toml",
        cleanvoice=CleanvoiceSettings(base_url="http://127.0.0.1:9/v2"),
        daemon=DaemonSettings(state_dir=tmp_path / "state"),
        folders=(Folder(**fields),),
    )


def creates(emu: Emulator) -> list[dict[str, Any]]:
    """The create-edit requests the emulator carried out."""
    return [r for r in emu.requests() if r.get("endpoint") == "create" and r.get("processed")]


class Setup:
    """A working directory with inbox, outbox, key file and config for one daemon."""

    def __init__(
        self,
        root: Path,
        base_url: str,
        *,
        after: str = "move",
        preset: str = "fillers = true\nlong_silences = true",
        extra_daemon: str = "",
        extra_folder: str = "",
    ):
        self.root = root
        self.inbox = root / "inbox"
        self.outbox = root / "outbox"
        self.state = root / "state"
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.outbox.mkdir(parents=True, exist_ok=True)
        self.key_file = root / "api_key"
        self.key_file.write_text(EMULATOR_KEY + "\n")
        os.chmod(self.key_file, 0o600)
        self.config = root / "cvsyncd.toml"
        self.config.write_text(
            textwrap.dedent(f"""\
            [cleanvoice]
            base_url = "{base_url}"
            api_key_file = "api_key"
            expected_processing_ratio = 0.0001

            [daemon]
            state_dir = "state"
            settle_seconds = 0.5
            poll_initial_seconds = 0.5
            poll_min_seconds = 0.2
            poll_max_seconds = 1
            {extra_daemon}

            [presets.podcast]
            {preset}

            [[folders]]
            inbox = "inbox"
            outbox = "outbox"
            preset = "podcast"
            after = "{after}"
            {extra_folder}
            """)
        )

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEANVOICE", "CVSYNCD"))}
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cvsyncd", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            cwd=self.root,
        )

    def jobs(self) -> list[dict[str, Any]]:
        proc = self.cli("jobs", "-c", str(self.config), "--json")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def daemon(self, *args: str, env: dict[str, str] | None = None) -> DaemonProcess:
        return DaemonProcess(self, list(args), env or {})


class DaemonProcess:
    """``cvsyncd run`` as a real subprocess, its log collected line by line."""

    def __init__(self, setup: Setup, args: list[str], env: dict[str, str]):
        self.setup = setup
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cvsyncd", "run", "-c", str(setup.config), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**setup.env(), **env},
            cwd=setup.root,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in list(self.lines):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(
            f"timed out waiting for {what or predicate}; daemon log:\n" + "".join(self.lines[-60:])
        )

    def stays(self, condition: Callable[[], bool], seconds: float, why: str) -> None:
        """Assert that ``condition`` holds for ``seconds`` (checked every 0.1 s) while the
        daemon keeps running: "nothing else happened", over a bounded window. ``why``
        says why that window is long enough to have seen it happen."""
        deadline = time.monotonic() + seconds
        while True:
            assert condition(), f"it happened within {seconds} s ({why}); log:\n" + "".join(
                self.lines[-40:]
            )
            assert self.proc.poll() is None, "the daemon exited:\n" + "".join(self.lines[-40:])
            if time.monotonic() >= deadline:
                return
            time.sleep(0.1)

    def count(self, event: str, **fields: Any) -> int:
        """How many times ``event`` was logged (with ``fields``) so far."""
        return sum(
            1
            for e in self.events()
            if e.get("event") == event and all(e.get(k) == v for k, v in fields.items())
        )

    def wait_for_event(self, event: str, timeout: float = 30, **fields: Any) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            found[:] = [
                e
                for e in self.events()
                if e.get("event") == event and all(e.get(k) == v for k, v in fields.items())
            ]
            return bool(found)

        self.wait_for(seen, timeout, f"log event {event!r} {fields}")
        return found[0]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self._close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        self._close()

    def _close(self) -> None:
        self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    @property
    def log_text(self) -> str:
        return "".join(self.lines)


# -- PostgreSQL (the shared store) ------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """A real PostgreSQL server for this test session (tests/pgserver.py), or a skip
    saying why it cannot run here."""
    from tests.pgserver import PgServer, PgUnavailable

    server = PgServer()
    try:
        server.start()
    except (PgUnavailable, OSError, subprocess.SubprocessError) as exc:
        server.close()
        pytest.skip(f"PostgreSQL cannot run here: {exc}")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_shared(pg_server: Any) -> Callable[..., Any]:
    """Make the [store] settings of a fresh database: ``pg_shared(site="a")``; several
    calls share the first call's database (two sites of one network)."""
    from cvsyncd.jobs.shared import SharedStore
    from tests.pgserver import PG_PASSWORD

    database = pg_server.database()

    def make(site: str = "site-a") -> SharedStore:
        return SharedStore(pg_server.url(database), site, PG_PASSWORD)

    return make


@pytest.fixture
def receiver() -> Iterator[Any]:
    """An alert receiver on 127.0.0.1 (tests/receivers.py), closed after the test."""
    from tests.receivers import Receiver

    r = Receiver()
    try:
        yield r
    finally:
        r.close()
