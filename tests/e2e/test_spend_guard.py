"""The spend guard end to end: ``cvsyncd run`` as a subprocess against the emulator, real
folders and a real state database. A backlog found at the first look is held (or taken,
or skipped) as the folder says, caps hold recordings before a byte is uploaded, a reload
that raises a cap lets them go, ``release`` queues them, and a crash changes nothing of
it. Tiny caps and one- or two-second recordings: nothing here waits for a clock."""

from __future__ import annotations

import json
import signal
import zlib
from pathlib import Path

import pytest

from cvsyncd.emulator import Emulator
from tests.conftest import EMULATOR_KEY, DaemonProcess, Setup, creates, make_wav

pytestmark = pytest.mark.e2e


def uploads(emulator: Emulator) -> list[str]:
    """The upload URLs asked for (the first request of every upload)."""
    return [str(r.get("path")) for r in emulator.requests() if r["endpoint"] == "upload"]


def held_jobs(setup: Setup) -> list[dict[str, object]]:
    return [j for j in setup.jobs() if j["state"] == "held"]


def status_text(setup: Setup) -> str:
    proc = setup.cli("status", "-c", str(setup.config))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def settle_new(daemon: DaemonProcess, setup: Setup, name: str, seconds: float = 1.0) -> None:
    """Drop a new recording while the daemon runs (so it is no backlog), of a tone of its
    own (the same content twice would be a duplicate, never uploaded)."""
    freq = 200 + zlib.crc32(name.encode()) % 800
    make_wav(setup.root / f".{name}.tmp", seconds=seconds, freq=freq).rename(setup.inbox / name)


@pytest.mark.parametrize("existing", ["auto", "hold"])
def test_a_backlog_is_held_until_released_and_new_recordings_are_taken(
    tmp_path: Path, emulator: Emulator, existing: str
) -> None:
    # three 2 s recordings are 6 s: more than backlog_hours = 0.001 h (3.6 s) for "auto";
    # "hold" holds them whatever they come to (backlog_hours is large)
    backlog_hours = "0.001" if existing == "auto" else "100"
    setup = Setup(
        tmp_path,
        emulator.base_url,
        after="keep",
        extra_daemon=f"\n[budget]\nbacklog_hours = {backlog_hours}\n",
        extra_folder=f'existing = "{existing}"',
    )
    for i in range(3):
        make_wav(setup.inbox / f"old{i}.wav", seconds=2.0, freq=300 + 100 * i)
    daemon = setup.daemon()
    try:
        decided = daemon.wait_for_event("inbox.backlog")
        assert (decided["decision"], decided["recordings"]) == ("hold", 3)
        daemon.wait_for(lambda: daemon.count("job.held", kind="backlog") == 3, what="3 held")
        # a recording that arrives now is not backlog: it is taken, and done
        settle_new(daemon, setup, "new.wav")
        daemon.wait_for_event("job.done", path="new.wav")
        assert len(uploads(emulator)) == 1 and len(creates(emulator)) == 1
        assert sorted(str(j["name"]) for j in held_jobs(setup)) == [
            "old0.wav",
            "old1.wav",
            "old2.wav",
        ]
        status = status_text(setup)
        assert "held (nothing uploaded" in status
        assert "backlog of folder inbox: 3 recordings" in status
        shown = setup.cli("show", "-c", str(setup.config), str(held_jobs(setup)[0]["id"]))
        assert "— held" in shown.stdout
        assert "already in the inbox when cvsyncd first watched the folder" in shown.stdout

        released = setup.cli("release", "-c", str(setup.config), "--all")
        assert released.returncode == 0, released.stderr
        assert released.stdout.count("released: it is queued for upload") == 3
        for i in range(3):
            daemon.wait_for_event("job.done", path=f"old{i}.wav")
    finally:
        assert daemon.stop() == 0
    assert len(creates(emulator)) == 4
    assert [j["state"] for j in setup.jobs()] == ["done"] * 4


def test_a_backlog_within_the_threshold_is_taken(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep")  # backlog_hours = 2 by default
    make_wav(setup.inbox / "a.wav", freq=300)
    make_wav(setup.inbox / "b.wav", freq=500)
    daemon = setup.daemon()
    try:
        decided = daemon.wait_for_event("inbox.backlog")
        assert (decided["decision"], decided["recordings"]) == ("take", 2)
        daemon.wait_for_event("job.done", path="a.wav")
        daemon.wait_for_event("job.done", path="b.wav")
    finally:
        assert daemon.stop() == 0
    assert daemon.count("job.held") == 0 and len(creates(emulator)) == 2


def test_a_skipped_backlog_stays_skipped_after_a_restart(
    tmp_path: Path, emulator: Emulator
) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep", extra_folder='existing = "skip"')
    make_wav(setup.inbox / "archive1.wav", freq=300)
    make_wav(setup.inbox / "archive2.wav", freq=500)
    daemon = setup.daemon()
    try:
        assert daemon.wait_for_event("inbox.backlog")["decision"] == "skip"
        settle_new(daemon, setup, "fresh.wav")
        daemon.wait_for_event("job.done", path="fresh.wav")
    finally:
        assert daemon.stop() == 0
    daemon = setup.daemon()  # a restart: the archive is still not a new recording
    try:
        daemon.wait_for_event("daemon.started")
        settle_new(daemon, setup, "fresh2.wav")
        daemon.wait_for_event("job.done", path="fresh2.wav")
        assert daemon.count("inbox.backlog") == 0  # decided once, at the first start
    finally:
        assert daemon.stop() == 0
    assert sorted(str(j["name"]) for j in setup.jobs()) == ["fresh.wav", "fresh2.wav"]
    assert len(creates(emulator)) == 2


def test_a_daily_cap_holds_and_a_reload_that_raises_it_lets_the_job_go(
    tmp_path: Path, emulator: Emulator
) -> None:
    # 0.0005 h = 1.8 s a day: the first 1 s recording fits, the second does not
    setup = Setup(
        tmp_path,
        emulator.base_url,
        after="keep",
        extra_daemon="\n[budget]\nhours_per_day = 0.0005\n",
    )
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("daemon.started")
        settle_new(daemon, setup, "one.wav")
        daemon.wait_for_event("job.done", path="one.wav")
        settle_new(daemon, setup, "two.wav")
        held = daemon.wait_for_event("job.held", path="two.wav")
        assert held["kind"] == "cap_day"
        assert held["reason"].startswith("daily cap of 0.0005 h reached: 0.000278 h used;")
        assert len(uploads(emulator)) == 1
        status = status_text(setup)
        assert "daily cap of 0.0005 h reached: 0.000278 h used; 1 recording" in status
        assert "two.wav" in status

        text = setup.config.read_text().replace("hours_per_day = 0.0005", "hours_per_day = 1")
        setup.config.write_text(text)
        daemon.proc.send_signal(signal.SIGHUP)  # `systemctl reload`
        daemon.wait_for_event("config.reloaded")
        daemon.wait_for_event("job.hold_ended", path="two.wav")
        daemon.wait_for_event("job.done", path="two.wav")
    finally:
        assert daemon.stop() == 0
    assert len(creates(emulator)) == 2
    # the usage ledger: two 1 s recordings, this month, in the one folder
    ledger = setup.cli("usage", "-c", str(setup.config), "--json")
    assert ledger.returncode == 0, ledger.stderr
    report = json.loads(ledger.stdout)
    assert [(r["folder"], r["recordings"]) for r in report["rows"]] == [("inbox", 2)]
    assert report["total"]["hours"] == pytest.approx(2 / 3600, abs=1e-4)
    table = setup.cli("usage", "-c", str(setup.config), "--by", "day", "--csv").stdout
    header, row = table.splitlines()
    assert header == "day,recordings,hours,unknown_length,credits"
    assert row.split(",")[1:4] == ["2", "0.0006", "0"]
    text = setup.cli("usage", "-c", str(setup.config)).stdout
    assert "usage in " in text and "  total" in text
    empty = setup.cli("usage", "-c", str(setup.config), "--month", "2001-01").stdout
    assert "no job finished in that time" in empty


def test_estimate_weighs_without_spending(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(
        tmp_path,
        emulator.base_url,
        extra_daemon="\n[budget]\nbacklog_hours = 0.001\nhours_per_day = 0.0012\n",
    )
    make_wav(setup.inbox / "a.wav", seconds=2.0, freq=300)
    make_wav(setup.inbox / "show" / "b.wav", seconds=3.0, freq=400)
    (setup.inbox / "notes.mp3").write_bytes(b"not audio" * 40)
    proc = setup.cli("estimate", "-c", str(setup.config), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    [folder] = report["folders"]
    found = {r["name"]: r for r in folder["recordings"]}
    assert found["a.wav"]["seconds"] == pytest.approx(2.0, abs=0.01)
    assert found["show/b.wav"]["seconds"] == pytest.approx(3.0, abs=0.01)
    assert found["notes.mp3"]["would"] == "not media"
    # 5 s is more than backlog_hours (3.6 s): the first start would hold all of it
    assert folder["backlog"] == "hold" and folder["hold"]["recordings"] == 2
    assert report["total"] == {"recordings": 0, "hours": 0.0}
    assert report["caps"][0]["cap"] == "hours_per_day" and report["caps"][0]["used"] == 0
    assert report["balance"]["known"] is True  # the emulator tells it in hours
    text = setup.cli("estimate", "-c", str(setup.config), "--offline").stdout
    assert "cap:     hours_per_day = 0.0012 h: 0 h used, 0.0012 h left until" in text
    assert "none set" not in text and "balance" not in text  # --offline: not asked
    assert "total:   0 recording(s), 0 h to take; 2 (0.00139 h) held until released" in text

    # given paths, with existing = "take": the caps (4.3 s a day) let the 2 s one go only
    text = setup.config.read_text() + 'existing = "take"\n'
    setup.config.write_text(text)
    given = setup.cli("estimate", "-c", str(setup.config), "inbox/show", "inbox/a.wav")
    assert given.returncode == 0, given.stderr
    assert "0:00:03  show/b.wav" in given.stdout and "0:00:02  a.wav" in given.stdout
    assert "would take 2 (0.00139 h)" in given.stdout
    assert "the caps let 1 of the 2 go now" in given.stdout
    assert "balance: " in given.stdout

    # nothing was uploaded, no job made, no state written
    assert [r["endpoint"] for r in emulator.requests()] == ["account", "account"]
    assert not (setup.state / "cvsyncd.sqlite3").exists()


def test_a_monthly_cap_holds_and_release_is_not_undone_by_the_same_cap(
    tmp_path: Path, emulator: Emulator
) -> None:
    setup = Setup(
        tmp_path,
        emulator.base_url,
        after="keep",
        extra_folder="hours_per_month = 0.0005",
    )
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("daemon.started")
        settle_new(daemon, setup, "one.wav")
        daemon.wait_for_event("job.done", path="one.wav")
        settle_new(daemon, setup, "two.wav")
        held = daemon.wait_for_event("job.held", path="two.wav")
        assert held["kind"] == "cap_folder_month"
        job_id = str(held["job"])
        released = setup.cli("release", "-c", str(setup.config), job_id)
        assert released.returncode == 0 and "released" in released.stdout
        daemon.wait_for_event("job.done", path="two.wav")
        assert daemon.count("job.held", path="two.wav") == 1  # not held a second time
        # the cap still holds a recording that was not released
        settle_new(daemon, setup, "three.wav")
        assert daemon.wait_for_event("job.held", path="three.wav")["kind"] == "cap_folder_month"
        again = setup.cli("release", "-c", str(setup.config), job_id)
        assert again.returncode == 1 and "not held" in again.stderr
    finally:
        assert daemon.stop() == 0
    assert len(creates(emulator)) == 2


def test_held_jobs_stay_held_through_a_crash(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(
        tmp_path,
        emulator.base_url,
        after="keep",
        extra_daemon="\n[budget]\nbacklog_hours = 0\n",
    )
    make_wav(setup.inbox / "old1.wav", freq=300)
    make_wav(setup.inbox / "old2.wav", freq=500)
    daemon = setup.daemon()
    try:
        daemon.wait_for(lambda: daemon.count("job.held") == 2, what="both held")
    finally:
        daemon.kill()  # kill -9: no goodbye
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("daemon.started")
        settle_new(daemon, setup, "new.wav")  # proof that this run takes and uploads
        daemon.wait_for_event("job.done", path="new.wav")
        assert daemon.count("inbox.backlog") == 0 and daemon.count("job.held") == 0
    finally:
        assert daemon.stop() == 0
    states = {str(j["name"]): j["state"] for j in setup.jobs()}
    assert states == {"old1.wav": "held", "old2.wav": "held", "new.wav": "done"}
    listed = setup.cli("jobs", "-c", str(setup.config), "--state", "held").stdout
    assert sorted(line.split()[2] for line in listed.splitlines() if line.startswith("#")) == [
        "old1.wav",
        "old2.wav",
    ]
    assert "more than backlog_hours = 0 h in [budget]" in listed
    assert len(uploads(emulator)) == 1 and len(creates(emulator)) == 1


def test_too_little_credit_is_known_before_uploading(tmp_path: Path) -> None:
    # 90 s of credit, in hours as the docs' account answer gives it; the first recording
    # (1 s) goes and is charged; a 100 s one is more than what is left: held, not refused
    with Emulator(
        tmp_path / "emulator", api_key=EMULATOR_KEY, processing_seconds=0.3, credits=1.5 / 60
    ) as emulator:
        setup = Setup(tmp_path, emulator.base_url, after="keep")
        daemon = setup.daemon()
        try:
            daemon.wait_for_event("daemon.started")
            settle_new(daemon, setup, "short.wav")
            daemon.wait_for_event("job.done", path="short.wav")
            daemon.wait_for(
                lambda: any(r["endpoint"] == "account" for r in emulator.requests()),
                what="the balance asked for",
            )
            settle_new(daemon, setup, "long.wav", seconds=100.0)
            held = daemon.wait_for_event("job.held", path="long.wav")
            assert held["kind"] == "credit"
            assert "of credit left, and this recording needs" in held["reason"]
            assert len(uploads(emulator)) == 1  # the long one was never uploaded
            assert not [r for r in emulator.requests() if r.get("status") == 402]
            emulator.add_credits(1.0)
            released = setup.cli("release", "-c", str(setup.config), str(held["job"]))
            assert released.returncode == 0, released.stderr
            daemon.wait_for_event("job.done", path="long.wav")
        finally:
            assert daemon.stop() == 0
    assert daemon.count("account.paused") == 0


def test_process_ends_when_what_is_left_is_held(tmp_path: Path, emulator: Emulator) -> None:
    # `cvsyncd process` takes the files it is given (no backlog), but the caps still hold
    setup = Setup(
        tmp_path,
        emulator.base_url,
        after="keep",
        extra_daemon="\n[budget]\nbacklog_hours = 0\nhours_per_day = 0.0005\n",
    )
    make_wav(setup.inbox / "a.wav", freq=300)
    make_wav(setup.inbox / "b.wav", freq=500)
    proc = setup.cli("process", "-c", str(setup.config), "inbox/a.wav", "inbox/b.wav")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.count(": done") == 1
    assert "held — daily cap of 0.0005 h reached" in proc.stdout
    assert len(creates(emulator)) == 1
    assert sorted(str(j["state"]) for j in setup.jobs()) == ["done", "held"]
