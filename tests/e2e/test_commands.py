"""The commands an operator uses every day, as subprocesses: honest, immediate and
scriptable. Folders that lead into an inbox on disk are refused; `pause` holds from the
moment it returns; `--json` is JSON alone; exit codes and messages are as the README says;
`status`, `show`, `check` and `init` say what a person needs to know."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cvsyncd.emulator import Emulator
from cvsyncd.jobs import InputFile, JobState
from cvsyncd.jobs.store import Store
from tests.conftest import Setup, creates, make_wav

FAST = "retry_initial_seconds = 0.2\nretry_max_seconds = 1.5"


def cvsyncd(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CLEANVOICE", "CVSYNCD"))}
    return subprocess.run(
        [sys.executable, "-m", "cvsyncd", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**base, **(env or {})},
        input=stdin if stdin is not None else "",
    )


# -- money first -----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["symlink", "dotdot", "symlinked-parent"])
def test_an_outbox_that_leads_into_the_inbox_is_refused(tmp_path: Path, how: str) -> None:
    setup = Setup(tmp_path, "http://127.0.0.1:9/v2")
    setup.outbox.rmdir()
    if how == "symlink":
        setup.outbox.symlink_to(setup.inbox / "results", target_is_directory=True)
        (setup.inbox / "results").mkdir()
        outbox = "outbox"
    elif how == "dotdot":
        (tmp_path / "elsewhere").mkdir()
        outbox = "elsewhere/../inbox/results"  # lexically apart until resolved
        (setup.inbox / "results").mkdir()
    else:
        (tmp_path / "parent").symlink_to(setup.inbox, target_is_directory=True)
        outbox = "parent/results"
    text = setup.config.read_text().replace('outbox = "outbox"', f'outbox = "{outbox}"')
    setup.config.write_text(text)
    check = setup.cli("check", "-c", str(setup.config))
    run = setup.cli("run", "-c", str(setup.config), timeout=30)
    assert run.returncode == 2 and run.stderr.startswith("cvsyncd: the config has")
    if how == "dotdot":  # ".." is resolved when the config is read: refused there already
        assert check.returncode == 2 and "lies inside the inbox" in check.stderr
        return
    assert check.returncode == 1
    assert "FAIL  folders[1].outbox" in check.stdout and "leads into its own inbox" in check.stdout
    assert "billed again" in run.stderr


def test_an_outbox_bind_mounted_into_the_inbox_is_refused(tmp_path: Path) -> None:
    setup = Setup(tmp_path, "http://127.0.0.1:9/v2")
    (setup.inbox / "hidden").mkdir()
    mounted = subprocess.run(
        ["mount", "--bind", str(setup.inbox / "hidden"), str(setup.outbox)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"no bind mount here (needs CAP_SYS_ADMIN): {mounted.stderr.decode().strip()}")
    try:
        check = setup.cli("check", "-c", str(setup.config))
        assert check.returncode == 1 and "leads into its own inbox" in check.stdout
    finally:
        subprocess.run(["umount", str(setup.outbox)], check=True)


def test_pause_holds_from_the_moment_it_returns(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep", extra_daemon=FAST)
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("daemon.started")
        paused = setup.cli("pause", "-c", str(setup.config))
        assert paused.returncode == 0
        paused_at = time.time()
        make_wav(setup.inbox / "ep.wav")  # settles in 0.5 s: long before the next turn
        daemon.wait_for_event("job.queued", path="ep.wav")
        # The scheduler turns every few milliseconds while work is due; the daemon's own
        # view of `pause` used to lag by up to 3 s. Watch a window longer than that.
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            assert not [r for r in emulator.requests() if r["endpoint"] == "upload"]
            time.sleep(0.2)
        assert setup.cli("resume", "-c", str(setup.config)).returncode == 0
        daemon.wait_for_event("job.done", path="ep.wav")
    finally:
        assert daemon.stop() == 0
    [upload] = [r for r in emulator.requests() if r["endpoint"] == "upload"]
    assert upload["ts"] > time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(paused_at + 4))


def test_an_error_note_names_the_real_config(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="move", extra_daemon=FAST)
    (setup.inbox / "fake.wav").write_bytes(b"RIFF\0\0\0\0WAVEfmt " + b"\0" * 40)
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.failed", path="fake.wav")
    finally:
        assert daemon.stop() == 0
    note = (setup.inbox / "failed" / "fake.wav.error.txt").read_text()
    assert f"cvsyncd retry -c {setup.config} 1" in note and "CONFIG" not in note


# -- scriptable --------------------------------------------------------------------------


def test_every_json_output_is_json_alone(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep", extra_daemon=FAST)
    make_wav(setup.inbox / "ep.wav")
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.done", path="ep.wav")
    finally:
        assert daemon.stop() == 0
    config = str(setup.config)
    for args in (
        ("status", "-c", config, "--json"),
        ("status", "-c", config, "--json", "--all"),
        ("jobs", "-c", config, "--json"),
        ("show", "-c", config, "1", "--json"),
        ("account", "-c", config, "--json"),
    ):
        done = setup.cli(*args)
        assert done.returncode == 0, done.stderr
        json.loads(done.stdout)  # nothing else on stdout: no log line first
    check = setup.cli("check", "-c", config)
    assert check.stdout.startswith("ok  ") and "{" not in check.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("frobnicate",), "invalid choice"),
        (("retry", "-c", "CONFIG"), "retry needs job ids"),
        (("process", "-c", "CONFIG", "--preset", "nope", "FILE"), "no preset named 'nope'"),
        (("jobs", "-c", "CONFIG", "--state", "sleeping"), "invalid choice"),
        (("init", "-c", "NEW"), "nothing can be asked"),
    ],
)
def test_usage_errors_exit_2_with_a_cvsyncd_message(
    tmp_path: Path, args: tuple[str, ...], words: str
) -> None:
    setup = Setup(tmp_path, "http://127.0.0.1:9/v2")
    make_wav(setup.inbox / "a.wav")
    real = [
        {"CONFIG": str(setup.config), "FILE": str(setup.inbox / "a.wav")}.get(a, a) for a in args
    ]
    real = [str(tmp_path / "new.toml") if a == "NEW" else a for a in real]
    done = setup.cli(*real)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.startswith("cvsyncd: ") and words in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_no_traceback_for_an_unwritable_place_or_an_ended_input(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    done = cvsyncd(
        "init", "-c", str(blocked / "config.toml"), "--inbox", str(tmp_path / "in"), "--yes",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1 and done.stderr.startswith("cvsyncd: ")
    assert "Traceback" not in done.stderr
    # Ctrl-D at the first question of `init`, in a real terminal
    main, side = pty.openpty()
    env = {**os.environ, "HOME": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "cvsyncd", "init", "-c", str(tmp_path / "c.toml")],
        stdin=side,
        stdout=side,
        stderr=side,
        cwd=tmp_path,
        env=env,
    )
    os.close(side)
    said = b""
    deadline = time.monotonic() + 30
    while b"Inbox folder" not in said:
        ready, _, _ = select.select([main], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, said
        said += os.read(main, 4096)
    assert said.index(str(tmp_path / "c.toml").encode()) < said.index(b"Inbox folder")
    os.write(main, b"\x04")  # end of input
    assert process.wait(timeout=30) == 1
    rest = b""
    while True:
        ready, _, _ = select.select([main], [], [], 5)
        if not ready:
            break
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        rest += chunk
    os.close(main)
    assert b"cvsyncd: the input ended before an answer was given" in rest
    assert b"Traceback" not in rest and not (tmp_path / "c.toml").exists()


def test_init_asks_before_writing_to_a_system_path(tmp_path: Path) -> None:
    home, work, system = tmp_path / "home", tmp_path / "work", tmp_path / "etc" / "cvsyncd"
    home.mkdir()
    work.mkdir()
    target = system / "config.toml"
    env = {"HOME": str(home)}
    args = ("init", "-c", str(target), "--inbox", str(tmp_path / "in"))
    refused = cvsyncd(*args, cwd=work, env=env)
    assert refused.returncode == 2 and "give --yes to write there" in refused.stderr
    assert not target.exists()
    written = cvsyncd(*args, "--yes", cwd=work, env=env)
    assert written.returncode == 0, written.stderr
    assert written.stdout.startswith(f"cvsyncd init writes a new config file: {target}")
    assert target.exists()


# -- honest and helpful -------------------------------------------------------------------


def test_status_summarises_and_show_reads_as_text(tmp_path: Path) -> None:
    setup = Setup(tmp_path, "http://127.0.0.1:9/v2")
    with open(setup.config, "a") as f:
        f.write('\n[[folders]]\ninbox = "inbox2"\noutbox = "outbox2"\npreset = "podcast"\n')
    (tmp_path / "inbox2").mkdir()
    store = Store.open(setup.state)
    try:
        folders = [str(setup.inbox), str(tmp_path / "inbox2")]
        for n in range(14):
            item = InputFile(f"ep{n}.wav", 100, n, str(n) * 64)
            job = store.create_job(folders[n % 2], f"ep{n}.wav", [item], {"fillers": True})
            assert job is not None
        now = time.time()
        store.transition(1, JobState.QUEUED, JobState.FAILED, "x", error="Cleanvoice said no")
        for job_id in (2, 3):
            store.transition(job_id, JobState.QUEUED, JobState.UPLOADING)
            store.transition(job_id, JobState.UPLOADING, JobState.UPLOADED)
            store.transition(job_id, JobState.UPLOADED, JobState.SUBMITTING)
            store.transition(
                job_id,
                JobState.SUBMITTING,
                JobState.PROCESSING,
                edit_id=f"e{job_id}",
                submitted_at=now,
                next_attempt_at=now + 30,
                facts={"duration": 3600.0, "preset": "podcast"},
            )
    finally:
        store.close()
    text = setup.cli("status", "-c", str(setup.config)).stdout
    assert "jobs:    11 queued, 2 processing, 1 failed" in text, text
    assert "  inbox   " in text and "  inbox2  " in text  # per folder
    assert "allows 15 recordings a minute at most" in text
    assert "expected done" in text and "next check" in text
    assert "#2 " in text and "#3 " in text and "#4 " not in text  # in progress, not queued
    assert "needs you:" in text and "Cleanvoice said no" in text
    every = setup.cli("status", "-c", str(setup.config), "--all").stdout
    assert every.count("queued") >= 11 and "… and" not in every
    shown = setup.cli("show", "-c", str(setup.config), "2").stdout
    assert shown.startswith("job 2: ep1.wav — processing")
    assert "preset:" in shown and "fillers = true" in shown
    assert "{" not in shown and "None" not in shown and "null" not in shown


def test_check_creates_nothing_and_gives_runs_help(tmp_path: Path) -> None:
    setup = Setup(tmp_path, "http://127.0.0.1:9/v2")
    keyed = setup.config.read_text()
    setup.config.write_text(keyed.replace('api_key_file = "api_key"\n', ""))
    check = setup.cli("check", "-c", str(setup.config))
    run = setup.cli("run", "-c", str(setup.config))
    assert not setup.state.exists()  # check looked; it made no state directory
    assert "does not exist yet; the daemon creates it" in check.stdout
    assert "give it in one of three ways" in check.stdout
    assert "give it in one of three ways" in run.stderr
    setup.config.write_text(keyed)
    setup.key_file.chmod(0o644)
    check = setup.cli("check", "-c", str(setup.config))
    run = setup.cli("run", "-c", str(setup.config))
    assert "chmod 600" in check.stdout and "chmod 600" in run.stderr


def test_check_and_status_know_what_is_running(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep", extra_daemon=FAST)
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("daemon.started")
        check = setup.cli("check", "-c", str(setup.config))
        assert f"a daemon already uses this state directory (pid {daemon.proc.pid})" in check.stdout
    finally:
        assert daemon.stop() == 0
    # a foreground `process` run holds the state directory too, but is no daemon
    emulator_slow = make_wav(tmp_path / "elsewhere" / "long.wav", seconds=2)
    process = subprocess.Popen(
        [sys.executable, "-m", "cvsyncd", "process", "-c", str(setup.config), str(emulator_slow)],
        cwd=tmp_path,
        env=setup.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        text = ""
        while "`cvsyncd process` run" not in text and time.monotonic() < deadline:
            text = setup.cli("status", "-c", str(setup.config)).stdout
            time.sleep(0.1)
        assert f"a `cvsyncd process` run (pid {process.pid}) is working" in text
        assert "daemon:  not running" in text
    finally:
        assert process.wait(timeout=60) == 0
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        process.stderr.close()
    assert len(creates(emulator)) == 1
