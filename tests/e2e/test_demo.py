"""``cvsyncd demo``: the first run in one command (README, Quickstart)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import make_wav, wait_until

pytestmark = pytest.mark.e2e


def demo_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEANVOICE", "CVSYNCD"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def everything_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.timeout(120)
def test_demo_once_cleans_the_sample_and_touches_nothing_outside_its_folder(
    tmp_path: Path,
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "mine.txt").write_text("the user's own file\n")
    home = tmp_path / "home"
    home.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "cvsyncd", "demo", "--once"],
        cwd=work,
        env={**demo_env(), "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    demo = work / "cvsyncd-demo"
    samples = list((demo / "inbox" / "done").glob("sample-*.wav"))
    assert len(samples) == 1, everything_under(demo)
    name = samples[0].name
    stem = name.removesuffix(".wav")
    assert (demo / "outbox" / name).stat().st_size > 0
    record = json.loads((demo / "outbox" / f"{stem}.cleanvoice.json").read_text())
    assert record  # the API result the emulator served, kept beside the audio
    lines = proc.stdout.splitlines()
    assert any(line.startswith(f"{name}: done") for line in lines), proc.stdout
    assert "the sample is cleaned" in proc.stdout
    # nothing of the user's outside the demo folder: the working folder holds only what
    # it held, plus the demo folder; the home folder stays empty
    assert sorted(p.name for p in work.iterdir()) == ["cvsyncd-demo", "mine.txt"]
    assert (work / "mine.txt").read_text() == "the user's own file\n"
    assert list(home.iterdir()) == []
    assert (demo / "config.toml").is_file() and (demo / "state").is_dir()


@pytest.mark.timeout(120)
def test_demo_keeps_watching_your_own_files_until_ctrl_c(tmp_path: Path) -> None:
    demo = tmp_path / "try it"  # a space in the path, as users have
    proc = subprocess.Popen(
        [sys.executable, "-m", "cvsyncd", "demo", "--dir", str(demo)],
        cwd=tmp_path,
        env=demo_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        lines.extend(proc.stdout)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_until(
            lambda: any("the sample is cleaned" in line for line in lines) or proc.poll(),
            "the sample to be cleaned",
            timeout=60,
        )
        assert proc.poll() is None, "".join(lines)
        own = make_wav(tmp_path / "my take.wav", seconds=1.0, freq=523.0)
        os.replace(own, demo / "inbox" / "my take.wav")
        wait_until(
            lambda: any(line.startswith("my take.wav: done") for line in lines) or proc.poll(),
            "the user's own recording to be done",
            timeout=60,
        )
        assert (demo / "outbox" / "my take.wav").is_file(), "".join(lines)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=60) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        reader.join(timeout=5)
        assert proc.stdout is not None
        proc.stdout.close()


@pytest.mark.timeout(180)
def test_each_demo_run_starts_afresh_and_a_foreign_state_folder_is_left_alone(
    tmp_path: Path,
) -> None:
    demo = tmp_path / "demo"

    def once() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cvsyncd", "demo", "--once", "--dir", str(demo)],
            env=demo_env(),
            capture_output=True,
            text=True,
            timeout=100,
        )

    first = once()
    assert first.returncode == 0, first.stdout + first.stderr
    (demo / "inbox" / "done" / "keep-me.txt").write_text("a file of mine\n")
    [sample] = (demo / "inbox" / "done").glob("sample-*.wav")
    # a second run a second later: a new sample, a new emulator, a new state
    stamp = sample.name
    wait_until(lambda: time.strftime("sample-%Y%m%d-%H%M%S.wav") != stamp, "the next second", 5)
    second = once()
    assert second.returncode == 0, second.stdout + second.stderr
    assert len(list((demo / "inbox" / "done").glob("sample-*.wav"))) == 2
    assert len([line for line in second.stdout.splitlines() if ": done" in line]) == 1
    assert (demo / "inbox" / "done" / "keep-me.txt").read_text() == "a file of mine\n"

    other = tmp_path / "mine"
    (other / "state").mkdir(parents=True)
    (other / "state" / "precious.db").write_text("not the demo's\n")
    refused = subprocess.run(
        [sys.executable, "-m", "cvsyncd", "demo", "--once", "--dir", str(other)],
        env=demo_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1
    assert f"{other / 'state'} exists but is not the demo's" in refused.stderr
    assert (other / "state" / "precious.db").read_text() == "not the demo's\n"
