"""What only the shared store has: several sites on one PostgreSQL database (a real
server, see tests/pgserver.py): migrations when daemons start together, a daemon killed
mid-write, which questions are a site's own and which are the account's."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cvsyncd.errors import StoreTooNew, StoreUnavailable
from cvsyncd.jobs import ALL_FOLDERS, InputFile, JobState, Listing, Store
from cvsyncd.jobs.shared import SharedStore
from cvsyncd.jobs.spending import Backlog
from tests.conftest import wait_until
from tests.pgserver import PG_PASSWORD, PgServer

# without the postgres extra these tests are skipped, saying why (as the fixtures do
# where PostgreSQL itself cannot run)
psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed: cvsyncd[postgres]")
from cvsyncd.jobs.postgres import PG_SCHEMA_VERSION, VERSION_TABLE, PgStore  # noqa: E402

S = JobState
OPTIONS = {"fillers": True}

# a process that opens the shared store, given by environment (the password too)
OPEN_CODE = (
    "import os, sys; from pathlib import Path; from cvsyncd.jobs import Store\n"
    "from cvsyncd.jobs.shared import SharedStore\n"
    "shared = SharedStore(os.environ['T_URL'], sys.argv[2], os.environ['T_PASSWORD'])\n"
    "s = Store.open(Path(sys.argv[1]), shared=shared)\n"
    "print(s.schema_version(), flush=True)\n"
    "s.close()\n"
)


def recording(name: str, fingerprint: str) -> InputFile:
    return InputFile(name, 1000, 1_700_000_000_000_000_000, fingerprint)


@pytest.fixture
def two_sites(
    pg_shared: Callable[[str], SharedStore], tmp_path: Path
) -> Iterator[tuple[Store, Store]]:
    a = Store.open(tmp_path / "a", shared=pg_shared("studio-a"))
    b = Store.open(tmp_path / "b", shared=pg_shared("studio-b"))
    yield a, b
    a.close()
    b.close()


def env_for(shared: SharedStore, **more: str) -> dict[str, str]:
    return {**os.environ, "T_URL": shared.url, "T_PASSWORD": shared.password or "", **more}


def test_daemons_starting_at_once_migrate_once(
    pg_shared: Callable[[str], SharedStore], tmp_path: Path
) -> None:
    shared = pg_shared("x")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_CODE, str(tmp_path / f"s{n}"), f"site-{n}"],
            env=env_for(shared),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [o[1][-800:] for o in outs]
    assert [o[0].strip() for o in outs] == [str(PG_SCHEMA_VERSION)] * 4
    with psycopg.connect(shared.url, password=PG_PASSWORD) as conn:
        rows = conn.execute(f"SELECT version FROM {VERSION_TABLE} ORDER BY version").fetchall()
    assert [r[0] for r in rows] == list(range(1, PG_SCHEMA_VERSION + 1))


def test_a_daemon_killed_while_migrating_blocks_nobody(
    pg_shared: Callable[[str], SharedStore], tmp_path: Path
) -> None:
    """SIGKILL inside the migration's transaction (holding the migration and write locks):
    the server ends the session, so the next daemon migrates at once, from scratch."""
    shared = pg_shared("x")
    proc = subprocess.run(
        [sys.executable, "-c", OPEN_CODE, str(tmp_path / "s1"), "one"],
        env=env_for(shared, CVSYNCD_FAILPOINTS="migrate.statement:3"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -9
    assert PgStore.inspect_shared(shared) is None  # rolled back: no half schema
    started = time.monotonic()
    store = Store.open(tmp_path / "s2", shared=pg_shared("two"))
    try:
        assert time.monotonic() - started < 10
        assert store.schema_version() == PG_SCHEMA_VERSION
        assert store.create_job("/in", "a.wav", [recording("a.wav", "f" * 64)], {}) is not None
    finally:
        store.close()


def test_a_newer_schema_is_refused_and_left_alone(
    pg_shared: Callable[[str], SharedStore], tmp_path: Path
) -> None:
    shared = pg_shared("x")
    Store.open(tmp_path / "s", shared=shared).close()
    with psycopg.connect(shared.url, password=PG_PASSWORD, autocommit=True) as conn:
        conn.execute(f"INSERT INTO {VERSION_TABLE} VALUES (%s, 0)", (PG_SCHEMA_VERSION + 1,))
    with pytest.raises(StoreTooNew, match="newer cvsyncd at another site"):
        Store.open(tmp_path / "s", shared=shared)
    with pytest.raises(StoreTooNew):
        PgStore.inspect_shared(shared)


def test_a_site_asks_about_its_own_work(two_sites: tuple[Store, Store]) -> None:
    a, b = two_sites
    ja = a.create_job("show", "ep1.wav", [recording("ep1.wav", "1" * 64)], OPTIONS)
    jb = b.create_job("show", "ep1.wav", [recording("ep1.wav", "2" * 64)], OPTIONS)
    assert ja is not None and jb is not None and ja.id != jb.id
    assert (ja.site, jb.site) == ("studio-a", "studio-b")
    now = time.time()
    assert [d.id for d in a.due(S.QUEUED, now, 10)] == [ja.id]
    assert [j.id for j in b.due_jobs(now)] == [jb.id]
    assert a.find_by_input("show", "ep1.wav", 1000, 1_700_000_000_000_000_000).id == ja.id  # type: ignore[union-attr]
    assert b.find_pending_for_name("show", "ep1.wav").id == jb.id  # type: ignore[union-attr]
    assert a.count_by_folder() == {"show": {S.QUEUED: 1}}
    # the same name at both sites is two recordings, each its site's own
    assert a.find_by_identity("show", "ep1.wav", "2" * 64) is None
    # …but a listing, and a job by its id, are the account's: every site
    listed = [json.loads(t) for t in a.summaries_json(Listing())]
    assert [(j["id"], j["site"]) for j in listed] == [(jb.id, "studio-b"), (ja.id, "studio-a")]
    assert b.get(ja.id) is not None
    assert a.count_by_state() == {S.QUEUED: 2}


def test_the_same_recording_at_two_sites_is_found_by_content(
    two_sites: tuple[Store, Store],
) -> None:
    a, b = two_sites
    ja = a.create_job("show", "ep1.wav", [recording("ep1.wav", "9" * 64)], OPTIONS)
    assert ja is not None
    found = b.find_same_content("9" * 64, dict(OPTIONS))
    assert found is not None and found.id == ja.id and found.site == "studio-a"


def test_operator_state_is_shared_and_folder_state_is_not(two_sites: tuple[Store, Store]) -> None:
    a, b = two_sites
    b.set_hold(ALL_FOLDERS, "pause all, from studio b")
    assert a.holds() == {ALL_FOLDERS: "pause all, from studio b"}
    a.set_account_pause("the key was refused")
    assert b.account_pause() == "the key was refused"
    before = a.forget_generation()
    b.bump_forget_generation()
    assert a.forget_generation() != before
    a.set_unavailable_folders({"show": "not mounted"})
    assert b.unavailable_folders() == {} and a.unavailable_folders() == {"show": "not mounted"}
    a.set_refused_entries([{"folder": "show", "path": "x", "reason": "a FIFO"}])
    assert b.refused_entries() == []
    a.set_backlog("show", Backlog("hold", "ask", 2.0, 1.0, {"x.wav": [1, 2]}))
    assert b.backlog("show") is None and a.backlog("show") is not None


def test_spend_is_the_accounts_and_a_folder_cap_the_sites(two_sites: tuple[Store, Store]) -> None:
    a, b = two_sites
    now = time.time()
    for store, fp in ((a, "1"), (b, "2")):
        job = store.create_job("show", f"{fp}.wav", [recording(f"{fp}.wav", fp * 64)], {})
        assert job is not None
        store.transition(
            job.id, S.QUEUED, S.UPLOADING, "spent", facts={"spend": {"at": now, "hours": 0.5}}
        )
    assert a.spent(now - 1, now + 1).hours == pytest.approx(1.0)
    assert b.spent(now - 1, now + 1).recordings == 2
    assert a.spent(now - 1, now + 1, folder="show").hours == pytest.approx(0.5)


def test_a_stopped_database_raises_unavailable_and_the_store_reconnects(
    pg_server: Any, pg_shared: Callable[[str], SharedStore], tmp_path: Path
) -> None:
    """The server stopped and started again (a restart, a failover): the store says so
    plainly, without the password, and works again once it answers."""
    store = Store.open(tmp_path / "s", shared=pg_shared("x"))
    try:
        job = store.create_job("show", "a.wav", [recording("a.wav", "a" * 64)], {})
        assert job is not None
        pg_server.stop_server()
        try:
            with pytest.raises(StoreUnavailable, match="does not answer") as info:
                store.transition(job.id, S.QUEUED, S.UPLOADING)
            assert PG_PASSWORD not in str(info.value)
            with pytest.raises(StoreUnavailable):
                store.get(job.id)
        finally:
            pg_server.start_server()
        moved = store.transition(job.id, S.QUEUED, S.UPLOADING)
        assert moved.state is S.UPLOADING
    finally:
        store.close()


def test_a_burst_from_four_sites_never_exceeds_the_budget(
    pg_shared: Callable[[str], SharedStore], tmp_path: Path
) -> None:
    """Four daemons' limiters (four sites, each in its own thread with its own event loop
    and connection) ask for 6 requests each at once from a budget of 6 in 2 s: in no 2 s
    window do more than 6 go, and the burst takes four windows."""
    from cvsyncd.cleanvoice.budget import RateLimiter

    limit, window = 6, 2.0
    stores = [Store.open(tmp_path / f"s{n}", shared=pg_shared(f"site-{n}")) for n in range(4)]
    sent: list[float] = []
    lock = threading.Lock()

    def site(store: Store) -> None:
        limiter = RateLimiter({"submit": 100})
        limiter.budgets["submit"].limit = limit
        limiter.budgets["submit"].window = window
        limiter.share(store.take_request, store.close_requests)

        async def burst() -> None:
            for _ in range(6):
                await limiter.acquire("submit")
                with lock:
                    sent.append(time.monotonic())

        asyncio.run(asyncio.wait_for(burst(), 60))

    threads = [threading.Thread(target=site, args=(s,)) for s in stores]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
    finally:
        for s in stores:
            s.close()
    assert len(sent) == 24
    sent.sort()
    slack = 0.2  # between the database's count and the thread noting the time
    assert all(b - a >= window - slack for a, b in zip(sent, sent[limit:], strict=False))
    assert sent[-1] - sent[0] >= 3 * window - slack


def test_a_site_waits_for_anothers_serialized_check(
    two_sites: tuple[Store, Store], pg_server: PgServer
) -> None:
    """While one site checks a cap and records its spend, another site's check waits, then
    sees the spend: two sites never both pass a cap with room for one. The first site holds
    its transaction until the server shows the other one waiting for the lock."""
    a, b = two_sites
    cap, needs = 1.0, 0.6
    jobs = []
    for store, fp in ((a, "1"), (b, "2")):
        job = store.create_job("show", f"{fp}.wav", [recording(f"{fp}.wav", fp * 64)], {})
        assert job is not None
        jobs.append(job)
    passed: list[str] = []
    inside = threading.Event()

    def someone_waits_for_the_lock() -> bool:
        with psycopg.connect(pg_server.admin_url(), autocommit=True) as watcher:
            row = watcher.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone()
        return bool(row and row[0])

    def spend(store: Store, job_id: int, first: bool) -> None:
        now = time.time()
        with store.serialized():
            if store.spent(now - 60, now + 60).hours + needs <= cap:
                if first:
                    inside.set()
                    wait_until(someone_waits_for_the_lock, "the other site to wait", 20)
                store.transition(
                    job_id,
                    S.QUEUED,
                    S.UPLOADING,
                    facts={"spend": {"at": now, "hours": needs}},
                )
                passed.append(store.site)

    first = threading.Thread(target=spend, args=(a, jobs[0].id, True))
    first.start()
    assert inside.wait(10)
    spend(b, jobs[1].id, False)
    first.join(30)
    assert passed == ["studio-a"]


def test_recovery_and_slots_count_only_the_sites_own_jobs(two_sites: tuple[Store, Store]) -> None:
    """Site b starting up must not "recover" site a's upload in flight, nor count a's
    edits against its own slots."""
    a, b = two_sites
    job = a.create_job("show", "a.wav", [recording("a.wav", "a" * 64)], {})
    assert job is not None
    a.transition(job.id, S.QUEUED, S.UPLOADING)
    assert [j.id for j in a.jobs([S.UPLOADING], mine=True)] == [job.id]
    assert b.jobs([S.UPLOADING], mine=True) == []
    assert b.jobs([S.UPLOADING]) != []  # the listing is every site's
    assert b.count_by_state(mine=True) == {} and a.count_by_state(mine=True) == {S.UPLOADING: 1}


HOLD_CODE = (
    "import os, sys, time; from pathlib import Path; from cvsyncd.jobs import Store\n"
    "from cvsyncd.jobs.shared import SharedStore\n"
    "shared = SharedStore(os.environ['T_URL'], 'frozen', os.environ['T_PASSWORD'],"
    " lease_seconds=float(sys.argv[2]))\n"
    "s = Store.open(Path(sys.argv[1]), shared=shared)\n"
    "with s.serialized():\n"
    "    s.set_hold('*', 'mid-transaction')\n"
    "    print('inside', flush=True)\n"
    "    sys.stdin.read()\n"  # stays inside the transaction until killed or stopped
)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGSTOP"])
def test_a_daemon_killed_or_frozen_mid_write_blocks_others_for_a_lease_at_most(
    pg_shared: Callable[[str], SharedStore], tmp_path: Path, how: str
) -> None:
    """A daemon killed with SIGKILL inside a write: the kernel closes its socket and the
    server ends its session at once. Frozen (SIGSTOP, or a host cut off): the server ends
    it after the lease. Either way its write is rolled back and another site goes on."""
    shared = pg_shared("x")
    lease = 3.0
    Store.open(tmp_path / "first", shared=shared).close()  # the schema, outside the test
    other = Store.open(tmp_path / "o", shared=pg_shared("other"))
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_CODE, str(tmp_path / "h"), str(lease)],
        env=env_for(shared),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "inside\n"
            os.kill(holder.pid, getattr(signal, how))
            started = time.monotonic()
            other.set_account_pause("another site writes")  # waits for the lock
            waited = time.monotonic() - started
            assert waited < (2.0 if how == "SIGKILL" else lease + 5.0)
            if how == "SIGSTOP":
                assert waited >= lease - 0.5  # it did hold the lock, for the lease
            assert other.holds() == {}  # the frozen write was rolled back
        finally:
            other.close()
            holder.kill()
            holder.wait(30)
