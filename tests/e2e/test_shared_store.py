"""Two sites, one network: two daemons (``cvsyncd run`` subprocesses), each with its own
inbox tree and state directory, sharing one job store on a real PostgreSQL server (started
by the tests, tests/pgserver.py) and one Cleanvoice key (the emulator)."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cvsyncd.emulator import Emulator, FaultSettings
from cvsyncd.jobs.shared import SharedStore
from tests.conftest import DaemonProcess, Setup, creates, fetch, make_wav, wait_until
from tests.pgserver import free_port

pytestmark = pytest.mark.e2e


def site_setup(
    root: Path,
    emulator: Emulator,
    shared: SharedStore,
    *,
    cleanvoice: str = "",
    budget: str = "",
) -> Setup:
    """A site's folders and config, its [store] naming the shared database."""
    root.mkdir(parents=True, exist_ok=True)
    password = root / "pg-password"
    password.write_text(f"{shared.password}\n")
    password.chmod(0o600)
    store = (
        f'\n[store]\nurl = "{shared.url}"\npassword_file = "pg-password"\nsite = "{shared.site}"\n'
    )
    setup = Setup(root, emulator.base_url, after="keep", extra_daemon=store + budget)
    if cleanvoice:
        text = setup.config.read_text()
        setup.config.write_text(text.replace("[daemon]\n", f"{cleanvoice}\n\n[daemon]\n", 1))
    return setup


def two_sites(
    root: Path, emulator: Emulator, pg_shared: Callable[[str], SharedStore], **config: str
) -> tuple[Setup, Setup]:
    """Studios a and b, each with its own folders, sharing one database."""
    return (
        site_setup(root / "a", emulator, pg_shared("studio-a"), **config),
        site_setup(root / "b", emulator, pg_shared("studio-b"), **config),
    )


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for d in started:
        d.stop(signal.SIGKILL)  # (only signalled if still running; its pipe closed)


def start(setup: Setup, started: list[DaemonProcess]) -> DaemonProcess:
    daemon = setup.daemon()
    started.append(daemon)
    daemon.wait_for_event("daemon.started", timeout=60)
    return daemon


def drop(setup: Setup, name: str, freq: float, seconds: float = 1.0) -> None:
    """A recording appears whole in the inbox (written aside, then renamed in)."""
    make_wav(setup.root / f".{name}.tmp", seconds=seconds, freq=freq).rename(setup.inbox / name)


def states(setup: Setup) -> list[tuple[str, str]]:
    return sorted((j["site"], j["state"]) for j in setup.jobs())


def endpoint_count(emulator: Emulator, endpoint: str) -> int:
    return sum(1 for r in emulator.requests() if r.get("endpoint") == endpoint)


def test_the_same_recording_at_two_sites_is_created_once_and_listed_by_both(
    tmp_path: Path,
    emulator: Emulator,
    pg_shared: Callable[[str], SharedStore],
    daemons: list[DaemonProcess],
) -> None:
    a, b = two_sites(tmp_path, emulator, pg_shared)
    start(a, daemons)
    start(b, daemons)
    drop(a, "episode.wav", 440.0)
    drop(b, "episode.wav", 440.0)  # the same raw file, dropped at the other studio too

    def settled() -> bool:
        return states(a) in (
            [("studio-a", "done"), ("studio-b", "duplicate")],
            [("studio-a", "duplicate"), ("studio-b", "done")],
        )

    wait_until(settled, "one job done and the other a duplicate", 90)
    assert len(creates(emulator)) == 1  # paid once
    listed_a, listed_b = a.jobs(), b.jobs()
    assert {j["site"] for j in listed_a} == {"studio-a", "studio-b"}
    assert [(j["id"], j["state"]) for j in listed_a] == [(j["id"], j["state"]) for j in listed_b]
    # each daemon delivered (or reported) its own job only: its outbox is its own
    done = next(j for j in listed_a if j["state"] == "done")
    outbox = (a if done["site"] == "studio-a" else b).outbox
    assert any(outbox.rglob("*.wav")), "the done job's cleaned audio is in its site's outbox"


def test_a_daily_cap_holds_across_sites(
    tmp_path: Path,
    emulator: Emulator,
    pg_shared: Callable[[str], SharedStore],
    daemons: list[DaemonProcess],
) -> None:
    # each recording is 2 s (0.00056 h); the account's day allows 0.0008 h: one, not two
    budget = "\n[budget]\nhours_per_day = 0.0008\n"
    a, b = two_sites(tmp_path, emulator, pg_shared, budget=budget)
    start(a, daemons)
    start(b, daemons)
    drop(a, "one.wav", 300.0, seconds=2.0)
    drop(b, "two.wav", 600.0, seconds=2.0)

    def one_done_one_held() -> bool:
        return sorted(s for _, s in states(a)) == ["done", "held"]

    wait_until(one_done_one_held, "one recording done and the other held by the cap", 90)
    assert len(creates(emulator)) == 1
    held = next(j for j in b.jobs() if j["state"] == "held")
    assert held["hold"]["kind"] == "cap_day"


def test_the_request_budget_holds_under_a_burst_from_both_sites(
    tmp_path: Path,
    emulator: Emulator,
    pg_shared: Callable[[str], SharedStore],
    daemons: list[DaemonProcess],
) -> None:
    """A key allows 3 uploads/creates a minute. Each site alone would send 3 in its first
    minute (6 together); sharing the budget, both together send 3."""
    cleanvoice = "submit_requests_per_minute = 3"
    a, b = two_sites(tmp_path, emulator, pg_shared, cleanvoice=cleanvoice)
    start(a, daemons)
    start(b, daemons)
    for n in range(3):
        drop(a, f"a{n}.wav", 200.0 + 50 * n)
        drop(b, f"b{n}.wav", 500.0 + 50 * n)

    def submits() -> int:
        return endpoint_count(emulator, "upload") + endpoint_count(emulator, "create")

    wait_until(lambda: submits() >= 3, "the first minute's three requests", 60)
    daemons[0].stays(
        lambda: submits() == 3,
        8,
        "both sites have six recordings waiting and poll the budget every few seconds",
    )
    assert daemons[1].proc.poll() is None


def test_pause_all_from_one_site_holds_the_other(
    tmp_path: Path,
    emulator: Emulator,
    pg_shared: Callable[[str], SharedStore],
    daemons: list[DaemonProcess],
) -> None:
    a, b = two_sites(tmp_path, emulator, pg_shared)
    start(a, daemons)
    daemon_b = start(b, daemons)
    paused = a.cli("pause", "-c", str(a.config))
    assert paused.returncode == 0, paused.stderr
    drop(b, "later.wav", 700.0)
    wait_until(lambda: states(b) == [("studio-b", "queued")], "studio b's job queued", 30)
    daemon_b.stays(
        lambda: endpoint_count(emulator, "upload") == 0,
        4,
        "studio b's daemon looks at its queue every second or so",
    )
    resumed = a.cli("resume", "-c", str(a.config))
    assert resumed.returncode == 0, resumed.stderr
    wait_until(lambda: states(b) == [("studio-b", "done")], "studio b's job done", 60)


def test_the_database_stopped_and_restarted_mid_run(
    tmp_path: Path,
    emulator: Emulator,
    pg_server: Any,
    pg_shared: Callable[[str], SharedStore],
    daemons: list[DaemonProcess],
) -> None:
    """PostgreSQL stops while a daemon runs: it says so (log, dashboard), takes nothing new
    meanwhile, and when the database is back finishes every recording, each created once."""
    port = free_port()
    web = f'\n[web]\nlisten = "127.0.0.1:{port}"\n'
    a = site_setup(tmp_path / "a", emulator, pg_shared("studio-a"), budget=web)
    daemon = start(a, daemons)
    drop(a, "before.wav", 330.0)
    wait_until(lambda: states(a) == [("studio-a", "done")], "the first recording done", 60)
    pg_server.stop_server()
    try:
        drop(a, "during.wav", 550.0)
        daemon.wait_for_event("store.unavailable", timeout=60)
        assert daemon.proc.poll() is None, daemon.log_text[-2000:]
        assert len(creates(emulator)) == 1
        page = fetch("GET", f"http://127.0.0.1:{port}/jobs")
        assert page.status_code == 503 and "does not answer" in page.text
        assert fetch("GET", f"http://127.0.0.1:{port}/healthz").status_code == 503
    finally:
        pg_server.start_server()
    daemon.wait_for_event("store.available", timeout=60)
    wait_until(
        lambda: states(a) == [("studio-a", "done"), ("studio-a", "done")],
        "both recordings done",
        90,
    )
    assert len(creates(emulator)) == 2
    assert daemon.proc.poll() is None
    assert fetch("GET", f"http://127.0.0.1:{port}/jobs").status_code == 200


def test_an_edit_created_while_the_database_went_away_is_kept_not_made_ambiguous(
    tmp_path: Path,
    emulator: Emulator,
    pg_server: Any,
    pg_shared: Callable[[str], SharedStore],
    daemons: list[DaemonProcess],
) -> None:
    """The database stops while a create-edit is on its way: the edit is made (and
    billed), but its id cannot be stored. The daemon keeps the id and stores it once the
    database is back, so the recording is finished from that edit: not left for the user
    as "may have been billed", and never created twice."""
    a = site_setup(tmp_path / "a", emulator, pg_shared("studio-a"))
    daemon = start(a, daemons)
    # the create's answer takes 8 s: time enough to stop the database under it
    emulator.set_faults(
        FaultSettings(
            rate=1.0, kinds=frozenset({"slow"}), endpoints=frozenset({"create"}), slow_seconds=8
        )
    )
    drop(a, "ep.wav", 440.0)
    daemon.wait_for_event("job.submitting", timeout=60)
    pg_server.stop_server("immediate")
    try:
        assert creates(emulator) == [], "the database stopped only after the create answered"
        daemon.wait_for_event("job.edit_unrecorded", timeout=60)
    finally:
        emulator.set_faults(FaultSettings())
        pg_server.start_server()
    daemon.wait_for_event("job.done", path="ep.wav", timeout=90)
    assert daemon.count("job.submitted", late=True) == 1
    assert daemon.count("job.needs_attention") == 0
    assert len(creates(emulator)) == 1


def test_retry_from_one_site_is_carried_out_by_the_jobs_own_site(
    tmp_path: Path,
    emulator: Emulator,
    pg_shared: Callable[[str], SharedStore],
    daemons: list[DaemonProcess],
) -> None:
    """Studio b's daemon is killed right after a create-edit was sent (its answer never
    recorded): the job needs attention. `cvsyncd retry` at studio a queues it again, and
    studio b's daemon, which owns the file, does it."""
    a, b = two_sites(tmp_path, emulator, pg_shared)
    start(a, daemons)
    crashing = b.daemon(env={"CVSYNCD_FAILPOINTS": "submit.posted"})
    daemons.append(crashing)
    crashing.wait_for_event("daemon.started", timeout=60)
    drop(b, "take1.wav", 880.0)
    crashing.proc.wait(60)
    assert crashing.proc.returncode == -9
    daemon_b = start(b, daemons)
    wait_until(lambda: states(a) == [("studio-b", "needs_attention")], "needs attention at b", 60)
    [job] = a.jobs()
    retry = a.cli("retry", "-c", str(a.config), str(job["id"]))
    assert retry.returncode == 0, retry.stderr
    daemon_b.wait_for_event("job.done", path="take1.wav", timeout=90)
    assert states(b) == [("studio-b", "done")]
    assert len(creates(emulator)) == 2  # the one sent before the crash, and the retry
    assert any(b.outbox.rglob("take1.wav")) and not any(a.outbox.rglob("*.wav"))
