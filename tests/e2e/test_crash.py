"""Crash safety: the daemon is killed with SIGKILL at every step boundary and inside output
writing (``CVSYNCD_FAILPOINTS``), restarted, and the promises are checked from the
emulator's request log, the outbox, the inbox and ``cvsyncd jobs --json``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cvsyncd.emulator import Emulator
from cvsyncd.failpoints import NAMES
from cvsyncd.outbox.files import is_temp_name
from tests.conftest import Setup, creates, make_wav

pytestmark = pytest.mark.e2e

# the audio-only video path's points fire only for a video: tests/e2e/test_video_upload.py
VIDEO_POINTS = ("upload.extracted", "fetch.remuxed")
STEP_POINTS = [n for n in NAMES if not n.startswith("migrate.") and n not in VIDEO_POINTS]
# the output-writing points fire once per output: 1 = the media file, 2 = the JSON record
CASES = STEP_POINTS + [f"{n}:2" for n in NAMES if n.startswith("output.")]
AMBIGUOUS = {"submit.intent", "submit.posted"}


def visible_outputs(setup: Setup) -> dict[str, Path]:
    return {p.name: p for p in setup.outbox.rglob("*") if p.is_file() and not is_temp_name(p.name)}


def temp_files(setup: Setup) -> list[Path]:
    return [p for p in setup.outbox.rglob("*") if is_temp_name(p.name)]


def assert_outputs_whole(setup: Setup, original: bytes) -> None:
    """Every visible output is complete: the media equals what the emulator returns (the
    input's bytes) and the JSON record parses."""
    for name, path in visible_outputs(setup).items():
        if name.endswith(".cleanvoice.json"):
            json.loads(path.read_text())
        else:
            assert path.read_bytes() == original, f"{name} is not whole"


@pytest.mark.parametrize("point", CASES)
def test_kill_at_every_step_boundary(tmp_path: Path, emulator: Emulator, point: str) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="move")
    recording = make_wav(setup.inbox / "show" / "ep1.wav", seconds=1.5)
    original = recording.read_bytes()
    done_path = setup.inbox / "done" / "show" / "ep1.wav"

    crashed = setup.daemon(env={"CVSYNCD_FAILPOINTS": point})
    assert crashed.proc.wait(timeout=60) == -9, crashed.log_text
    crashed.kill()
    # at the instant of the crash: nothing half-written is visible, and the input is gone
    # only if both of its outputs are complete
    assert_outputs_whole(setup, original)
    if not recording.exists():
        assert set(visible_outputs(setup)) == {"ep1.wav", "ep1.cleanvoice.json"}

    daemon = setup.daemon()
    try:
        daemon.wait_for_event("daemon.started")
        daemon.wait_for(
            lambda: any(j["state"] in ("done", "needs_attention") for j in setup.jobs()),
            timeout=60,
            what="a final state",
        )
    finally:
        assert daemon.stop() == 0
    [job] = setup.jobs()
    made = creates(emulator)
    assert len(made) <= 1, "a recording was submitted twice"
    assert not temp_files(setup), "an orphaned temp file survived the restart"
    if point in AMBIGUOUS:
        # the create-edit may or may not have reached Cleanvoice: the user decides
        assert job["state"] == "needs_attention"
        assert "cvsyncd retry" in job["error"] and "may or may not" in job["error"]
        assert recording.exists() and not visible_outputs(setup)
        assert len(made) == (1 if point == "submit.posted" else 0)
        retry = setup.cli("retry", "-c", str(setup.config), str(job["id"]))
        assert retry.returncode == 0, retry.stderr
        daemon = setup.daemon()
        try:
            daemon.wait_for_event("job.done", path="show/ep1.wav", timeout=60)
        finally:
            assert daemon.stop() == 0
        assert len(creates(emulator)) == len(made) + 1  # the one deliberate resubmission
    else:
        assert job["state"] == "done", job
        assert len(made) == 1
    outputs = visible_outputs(setup)
    assert set(outputs) == {"ep1.wav", "ep1.cleanvoice.json"}
    assert_outputs_whole(setup, original)
    assert not recording.exists() and done_path.read_bytes() == original


def run_store_open(state_dir: Path, failpoint: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CVSYNCD_FAILPOINTS"}
    if failpoint:
        env["CVSYNCD_FAILPOINTS"] = failpoint
    code = (
        "import sys; from pathlib import Path; from cvsyncd.jobs import Store\n"
        "Store.open(Path(sys.argv[1])).close()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(state_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def schema(state_dir: Path) -> tuple[int, set[str]]:
    conn = sqlite3.connect(state_dir / "cvsyncd.sqlite3")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    return version, tables


@pytest.mark.parametrize("statement", [1, 2, 4, 7])
def test_kill_during_a_migration_leaves_the_old_schema(tmp_path: Path, statement: int) -> None:
    state = tmp_path / "state"
    proc = run_store_open(state, f"migrate.statement:{statement}")
    assert proc.returncode == -9
    assert schema(state) == (0, set())  # nothing of the half-done migration remains
    assert run_store_open(state, None).returncode == 0
    version, tables = schema(state)
    assert version >= 1 and {"jobs", "inputs", "events", "meta"} <= tables


def test_kill_right_after_a_migration_keeps_the_new_schema(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert run_store_open(state, "migrate.committed").returncode == -9
    version, tables = schema(state)
    assert version == 1 and {"jobs", "inputs", "events", "meta"} <= tables
    assert run_store_open(state, None).returncode == 0
