"""The container image's parts, run for real on this machine (docs/container.md).

No Docker engine runs here, so the image itself is built and run only by
``test_the_image_builds_and_runs`` where an engine answers (it is skipped, saying why,
elsewhere). Everything the image does besides being an image is tested directly: the
entrypoint (contrib/docker/entrypoint.sh, run by /bin/sh as in the image) switching to
PUID:PGID, the UMASK, the first start's config, the health check and a stop signal
reaching the daemon, which then drains. /config and /data are moved to temporary folders
with CVSYNCD_CONFIG_DIR and CVSYNCD_DATA_DIR.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cvsyncd.config import load_config
from cvsyncd.emulator import Emulator
from tests.conftest import EMULATOR_KEY, REPO, make_wav, wait_until

pytestmark = pytest.mark.e2e

ENTRYPOINT = REPO / "contrib" / "docker" / "entrypoint.sh"
PUID, PGID = 12345, 12346  # an account that exists nowhere: as a NAS user's numbers are
AS_ACCOUNT = ("setpriv", f"--reuid={PUID}", f"--regid={PGID}", "--clear-groups")
needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="switching to PUID:PGID needs root and setpriv (util-linux), as in the image",
)


@pytest.fixture
def place() -> Iterator[Path]:
    """A folder the unprivileged account can reach (pytest's tmp_path is root's, 0700)."""
    root = Path(tempfile.mkdtemp(prefix="cvsyncd-container-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def entrypoint_env(config_dir: Path, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEANVOICE", "CVSYNCD"))}
    env.update(
        {
            # the image puts its venv first on PATH; here, the tests' own
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
            "CVSYNCD_CONFIG_DIR": str(config_dir),
            "CVSYNCD_DATA_DIR": str(data_dir),
            "PUID": str(PUID),
            "PGID": str(PGID),
            "UMASK": "002",
            "TZ": "Europe/Berlin",
        }
    )
    env.update(extra)
    return env


class Entrypoint:
    """The entrypoint as a subprocess (as the container's command), its output collected."""

    def __init__(self, env: dict[str, str], *args: str):
        self.proc = subprocess.Popen(
            ["/bin/sh", str(ENTRYPOINT), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd="/",
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        self.lines.extend(self.proc.stdout)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in list(self.lines):
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return found

    def wait_for(self, predicate: Any, what: str, timeout: float = 60) -> None:
        wait_until(lambda: predicate() or self.proc.poll() is not None, what, timeout)
        assert self.proc.poll() is None, f"the entrypoint ended:\n{self.text}"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self._reader.join(timeout=5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def owner(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid


def process_ids(pid: int) -> tuple[int, int]:
    """The real uid and gid of a running process."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0])


def health(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", str(ENTRYPOINT), "health"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@needs_root
@pytest.mark.timeout(120)
def test_first_start_writes_a_starter_config_for_the_nas_account_and_waits(place: Path) -> None:
    config_dir, data_dir = place / "config", place / "data"
    data_dir.mkdir()
    os.chown(data_dir, PUID, PGID)  # the user's media share, theirs
    env = entrypoint_env(config_dir, data_dir)
    entry = Entrypoint(env)
    try:
        entry.wait_for(lambda: "waiting:" in entry.text, "the first start to say what to do")
        config = config_dir / "config.toml"
        for path in (config, config_dir / "web_password", config_dir / "state"):
            assert owner(path) == (PUID, PGID), path
        assert owner(config_dir) == (PUID, PGID)
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        assert stat.S_IMODE((config_dir / "web_password").stat().st_mode) == 0o600
        assert len((config_dir / "web_password").read_text().strip()) >= 32
        for folder in (data_dir / "inbox", data_dir / "outbox"):
            assert owner(folder) == (PUID, PGID), folder
            assert stat.S_IMODE(folder.stat().st_mode) == 0o775  # UMASK=002
        # what to edit, in words
        assert f"put your Cleanvoice API key in {config_dir}/api_key" in entry.text
        assert f"check the folders and the preset in {config}" in entry.text
        # the config it wrote is a valid one, for the container's places
        loaded = load_config(config)
        assert loaded.folders[0].inbox == data_dir / "inbox"
        assert loaded.folders[0].outbox == data_dir / "outbox"
        assert loaded.daemon.state_dir == config_dir / "state"
        assert loaded.cleanvoice.api_key_file == config_dir / "api_key"
        assert loaded.web is not None and loaded.web.host == "0.0.0.0"
        assert loaded.web.password_file == config_dir / "web_password"
        # nothing is processed while it waits, and a stop ends the wait at once
        entry.proc.send_signal(signal.SIGTERM)
        assert entry.proc.wait(timeout=10) == 0, entry.text
        assert "daemon.started" not in entry.text
    finally:
        entry.close()


@needs_root
@pytest.mark.timeout(180)
def test_the_daemon_runs_as_puid_writes_with_the_umask_and_drains_on_sigterm(
    place: Path,
) -> None:
    config_dir, data_dir = place / "config", place / "data"
    for folder in (config_dir, data_dir, data_dir / "inbox", data_dir / "outbox"):
        folder.mkdir()
    (data_dir / "inbox" / "show").mkdir()
    for folder in (data_dir, data_dir / "inbox", data_dir / "inbox" / "show", data_dir / "outbox"):
        os.chown(folder, PUID, PGID)
    # a key file copied in by root over a share: readable by all, owned by root
    key_file = config_dir / "api_key"
    key_file.write_text(EMULATOR_KEY + "\n")
    key_file.chmod(0o644)
    with Emulator(place / "emulator", api_key=EMULATOR_KEY, processing_seconds=1.0) as emu:
        (config_dir / "config.toml").write_text(
            textwrap.dedent(f"""\
                [cleanvoice]
                base_url = "{emu.base_url}"
                api_key_file = "{key_file}"

                [daemon]
                state_dir = "{config_dir / "state"}"
                settle_seconds = 0.5
                poll_initial_seconds = 0.5
                poll_min_seconds = 0.2

                [presets.podcast]
                fillers = true

                [[folders]]
                inbox = "{data_dir / "inbox"}"
                outbox = "{data_dir / "outbox"}"
                preset = "podcast"
                after = "move"
                """)
        )
        env = entrypoint_env(config_dir, data_dir)
        entry = Entrypoint(env)
        try:
            entry.wait_for(
                lambda: any(e.get("event") == "daemon.started" for e in entry.events()),
                "the daemon to start",
            )
            # exec all the way down: the entrypoint's process is the daemon, as PUID:PGID
            assert process_ids(entry.proc.pid) == (PUID, PGID)
            assert "made it readable by its owner only" in entry.text
            assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
            assert owner(key_file) == (PUID, PGID)
            wait_until(lambda: health(env).returncode == 0, "the health check to pass", 60)
            assert health(env).stdout.startswith("ok: the daemon")

            recording = make_wav(place / "ep1.wav", seconds=1.0)
            os.replace(recording, data_dir / "inbox" / "show" / "ep1.wav")
            result = data_dir / "outbox" / "show" / "ep1.wav"
            entry.wait_for(result.exists, "the cleaned recording in the outbox")
            entry.wait_for(
                lambda: any(e.get("event") == "job.done" for e in entry.events()), "job.done"
            )
            # the outbox belongs to the NAS account; new folders follow the UMASK
            assert owner(result) == (PUID, PGID)
            assert owner(result.parent) == (PUID, PGID)
            assert stat.S_IMODE(result.parent.stat().st_mode) == 0o775
            assert owner(config_dir / "state" / "cvsyncd.sqlite3") == (PUID, PGID)

            entry.proc.send_signal(signal.SIGTERM)  # docker stop, through tini
            assert entry.proc.wait(timeout=90) == 0, entry.text
            names = [e.get("event") for e in entry.events()]
            stopping = next(e for e in entry.events() if e.get("event") == "daemon.stopping")
            assert stopping.get("signal") == "SIGTERM"
            assert names[-1] == "daemon.stopped", names[-5:]
            after = health(env)
            assert after.returncode == 1
            assert after.stdout.startswith("unhealthy: no daemon is running")
        finally:
            entry.close()


@needs_root
@pytest.mark.timeout(120)
def test_started_as_the_account_itself_it_needs_no_root(place: Path) -> None:
    """`docker run --user 12345:12346` (or a rootless engine): no chown, no setpriv; the
    first start works the same."""
    python = os.path.realpath(sys.executable)
    probe = subprocess.run(
        [*AS_ACCOUNT, "/bin/sh", "-c", f'"{python}" -c pass'],
        capture_output=True,
    )
    if probe.returncode != 0:
        pytest.skip(
            f"this machine's Python ({python}) cannot be run by an unprivileged account "
            "(e.g. it lies under /root); the image's /usr/local one can"
        )
    config_dir, data_dir = place / "config", place / "data"
    for folder in (config_dir, data_dir):
        folder.mkdir()
        os.chown(folder, PUID, PGID)
    env = entrypoint_env(config_dir, data_dir)
    proc = subprocess.Popen(
        [*AS_ACCOUNT, "/bin/sh", str(ENTRYPOINT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd="/",
    )
    try:
        wait_until(lambda: (config_dir / "config.toml").exists(), "the starter config", 60)
        wait_until(lambda: (data_dir / "outbox").exists(), "the outbox", 30)
        assert owner(config_dir / "config.toml") == (PUID, PGID)
        assert owner(data_dir / "inbox") == (PUID, PGID)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert "waiting: nothing is processed" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)


@needs_root
@pytest.mark.timeout(60)
def test_the_entrypoint_refuses_bad_numbers_saying_which(place: Path) -> None:
    for name, value, words in (
        ("PUID", "nobody", "PUID must be a number"),
        ("PGID", "-1", "PGID must be a number"),
        ("UMASK", "0x22", "UMASK must be octal digits"),
    ):
        env = entrypoint_env(place / "config", place / "data", **{name: value})
        proc = subprocess.run(
            ["/bin/sh", str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=30
        )
        assert proc.returncode == 2, (name, proc.stderr)
        assert words in proc.stderr
    assert not (place / "config").exists()  # refused before anything was made


def docker_engine() -> str | None:
    """Why the image cannot be built here, or None when a Docker engine answers."""
    if shutil.which("docker") is None:
        return "no docker command on this machine"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker info failed: {exc}"
    return None if info.returncode == 0 else "no Docker engine answers (docker info failed)"


@pytest.mark.timeout(1800)
def test_the_image_builds_and_runs(place: Path) -> None:
    why = docker_engine()
    if why is not None:
        pytest.skip(f"the image is not built here: {why}")
    tag = f"cvsyncd-test:{os.getpid()}"
    subprocess.run(
        ["docker", "build", "-f", "contrib/docker/Dockerfile", "-t", tag, "."],
        cwd=REPO,
        check=True,
        timeout=1500,
    )
    config_dir = place / "config"
    config_dir.mkdir()
    name = f"cvsyncd-test-{os.getpid()}"
    try:
        subprocess.run(
            [
                *("docker", "run", "-d", "--name", name),
                *("-e", f"PUID={PUID}", "-e", f"PGID={PGID}"),
                *("-v", f"{config_dir}:/config", "-v", f"{place}:/data", tag),
            ],
            check=True,
            timeout=60,
        )

        def logs() -> str:
            proc = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
            return proc.stdout + proc.stderr

        wait_until(lambda: "waiting:" in logs(), "the first start's instructions", 120)
        assert owner(config_dir / "config.toml") == (PUID, PGID)
        stop = subprocess.run(["docker", "stop", name], capture_output=True, timeout=60)
        assert stop.returncode == 0
        code = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.ExitCode}}", name],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert code.stdout.strip() == "0", logs()
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, timeout=120)
