"""The job store's contract, on both backends (``store``/``backend`` in conftest.py: a
real SQLite file, a real PostgreSQL server), then what only SQLite's file has (pragmas,
the state directory, damaged files, its migrations)."""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cvsyncd import fsinfo
from cvsyncd.errors import StoreCorrupt, StoreError, StoreTooNew
from cvsyncd.jobs import InputFile, JobState, Listing, Spent, TransitionError
from cvsyncd.jobs.database import connect
from cvsyncd.jobs.lock import daemon_pid, wake_daemon
from cvsyncd.jobs.meta import ALL_FOLDERS
from cvsyncd.jobs.migrations import MIGRATIONS, SCHEMA_VERSION
from cvsyncd.jobs.store import DB_NAME, Store
from cvsyncd.pipeline.report import job_summary
from tests.conftest import wait_until
from tests.unit.jobs.conftest import Backend

S = JobState
HAPPY = [S.QUEUED, S.UPLOADING, S.UPLOADED, S.SUBMITTING, S.PROCESSING, S.FETCHING]
HAPPY += [S.WRITING, S.DISPOSING, S.DONE]
OPTIONS = {"fillers": True, "long_silences": True}


def make_input(name: str = "show/ep1.wav", fingerprint: str = "a" * 64) -> InputFile:
    return InputFile(name, 1234, 1_700_000_000_000_000_000, fingerprint)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def sqlite_store(state_dir: Path) -> Iterator[Store]:
    s = Store.open(state_dir)
    yield s
    s.close()


def test_open_creates_private_state_dir_and_database(state_dir: Path, sqlite_store: Store) -> None:
    assert stat.S_IMODE(os.stat(state_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(state_dir / DB_NAME).st_mode) == 0o600
    conn = sqlite3.connect(state_dir / DB_NAME)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()


def test_durability_pragmas_are_set(sqlite_store: Store) -> None:
    conn = sqlite_store._conn
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_create_job_and_read_it_back(store: Store) -> None:
    job = store.create_job(
        "/in", "show/ep1.wav", [make_input()], OPTIONS, facts={"preset": "podcast"}
    )
    assert job is not None
    assert job.state is S.QUEUED
    assert job.options == OPTIONS
    assert job.inputs == (make_input(),)
    assert job.facts == {"preset": "podcast"}
    assert store.events(job.id)[0][1] is S.QUEUED


def test_same_input_never_becomes_two_jobs(store: Store) -> None:
    first = store.create_job("/in", "show/ep1.wav", [make_input()], OPTIONS)
    again = store.create_job("/in", "show/ep1.wav", [make_input()], OPTIONS)
    assert first is not None and again is None
    assert len(store.jobs()) == 1
    # new content under the same name is a new recording
    other = store.create_job("/in", "show/ep1.wav", [make_input(fingerprint="b" * 64)], OPTIONS)
    assert other is not None and other.id != first.id


def test_transition_checks_current_state_in_sql(store: Store) -> None:
    job = store.create_job("/in", "ep.wav", [make_input("ep.wav")], OPTIONS)
    assert job is not None
    moved = store.transition(job.id, S.QUEUED, S.UPLOADING, "uploading")
    assert moved.state is S.UPLOADING
    with pytest.raises(StoreError, match="no longer queued"):
        store.transition(job.id, S.QUEUED, S.UPLOADING)
    with pytest.raises(TransitionError):
        store.transition(job.id, S.UPLOADING, S.DONE)
    assert store.get(job.id).state is S.UPLOADING  # type: ignore[union-attr]


def test_a_transition_sets_input_fields_in_the_same_transaction(store: Store) -> None:
    """The upload's file URLs are kept with the move to ``uploaded`` (one commit): a
    transition refused for its state leaves the inputs as they were, too."""
    job = store.create_job("/in", "ep.wav", [make_input("ep.wav")], OPTIONS)
    assert job is not None
    store.transition(job.id, S.QUEUED, S.UPLOADING)
    url = "http://127.0.0.1/storage/ep.wav"
    with pytest.raises(StoreError):
        store.transition(job.id, S.QUEUED, S.UPLOADING, inputs={0: {"file_url": url}})
    assert store.get(job.id).inputs[0].file_url is None  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="input fields"):
        store.transition(job.id, S.UPLOADING, S.UPLOADED, inputs={0: {"state": "done"}})
    moved = store.transition(
        job.id, S.UPLOADING, S.UPLOADED, "uploaded", inputs={0: {"file_url": url}}
    )
    assert moved.state is S.UPLOADED and moved.inputs[0].file_url == url


def test_update_sets_fields_and_json(store: Store) -> None:
    job = store.create_job("/in", "ep.wav", [make_input("ep.wav")], OPTIONS)
    assert job is not None
    job = store.update(
        job.id,
        S.QUEUED,
        None,
        attempts=3,
        error="boom",
        progress={"uploaded": 10, "size": 20},
        next_attempt_at=123.0,
    )
    assert (job.attempts, job.error, job.next_attempt_at) == (3, "boom", 123.0)
    assert job.progress == {"uploaded": 10, "size": 20}
    with pytest.raises(ValueError, match="not updatable"):
        store.update(job.id, S.QUEUED, None, created_at=0)


def test_due_jobs_and_next_due(store: Store) -> None:
    a = store.create_job("/in", "a.wav", [make_input("a.wav", "1" * 64)], OPTIONS)
    b = store.create_job("/in", "b.wav", [make_input("b.wav", "2" * 64)], OPTIONS)
    assert a and b
    store.update(b.id, S.QUEUED, None, next_attempt_at=time.time() + 100)
    due = store.due_jobs(time.time())
    assert [j.id for j in due] == [a.id]
    assert store.due_jobs(time.time(), exclude=[a.id]) == []
    assert store.next_due_at(after=-1) == 0
    assert store.next_due_at(after=time.time()) == pytest.approx(time.time() + 100, abs=5)
    store.transition(a.id, S.QUEUED, S.FAILED, "bad")
    assert store.next_due_at() == pytest.approx(time.time() + 100, abs=5)


def test_find_by_input_and_pending(store: Store) -> None:
    rec = make_input("show/ep1.wav")
    job = store.create_job("/in", rec.rel_path, [rec], OPTIONS)
    assert job is not None
    assert store.find_by_input("/in", rec.rel_path, rec.size, rec.mtime_ns).id == job.id  # type: ignore[union-attr]
    assert store.find_by_input("/in", rec.rel_path, rec.size + 1, rec.mtime_ns) is None
    assert store.find_by_input("/other", rec.rel_path, rec.size, rec.mtime_ns) is None
    assert store.find_pending_for_name("/in", rec.rel_path).id == job.id  # type: ignore[union-attr]
    store.transition(job.id, S.QUEUED, S.FAILED)
    assert store.find_pending_for_name("/in", rec.rel_path) is None
    # under that path, whatever its content, and whatever became of the job
    assert store.taken_before("/in", ["show/other.wav", rec.rel_path])
    assert not store.taken_before("/in", ["show/other.wav"])
    assert not store.taken_before("/other", [rec.rel_path])
    assert not store.taken_before("/in", [])


def test_find_same_content_matches_fingerprint_and_options(store: Store) -> None:
    a = store.create_job("/in", "a.wav", [make_input("a.wav")], {"fillers": True, "x": 1})
    assert a is not None
    # same options in another key order: the same effective preset
    assert store.find_same_content("a" * 64, {"x": 1, "fillers": True}).id == a.id  # type: ignore[union-attr]
    assert store.find_same_content("a" * 64, {"fillers": False}) is None
    assert store.find_same_content("a" * 64, {"fillers": True, "x": 1}, exclude=a.id) is None


def test_state_survives_reopen(backend: Backend) -> None:
    s = backend.open()
    job = s.create_job("/in", "ep.wav", [make_input("ep.wav")], OPTIONS)
    assert job is not None
    s.transition(job.id, S.QUEUED, S.UPLOADING)
    s.set_input(job.id, 0, file_url="http://127.0.0.1/storage/ep.wav")
    s.close()
    s = backend.open()
    try:
        again = s.get(job.id)
        assert again is not None and again.state is S.UPLOADING
        assert again.inputs[0].file_url == "http://127.0.0.1/storage/ep.wav"
    finally:
        s.close()


def test_delete_job_forgets_inputs_and_events(store: Store) -> None:
    job = store.create_job("/in", "ep.wav", [make_input("ep.wav")], OPTIONS)
    assert job is not None
    assert store.delete_job(job.id)
    assert store.get(job.id) is None
    assert store.events(job.id) == []
    assert store.find_by_input("/in", "ep.wav", 1234, make_input().mtime_ns) is None
    assert store.create_job("/in", "ep.wav", [make_input("ep.wav")], OPTIONS) is not None


def test_job_ids_are_never_given_twice(backend: Backend) -> None:
    """An old message says `cvsyncd retry 3`: after `forget 3`, 3 must name nothing."""
    store = backend.open()
    ids = []
    for n in range(3):
        job = store.create_job("/in", f"ep{n}.wav", [make_input(f"ep{n}.wav", str(n) * 64)], {})
        assert job is not None
        ids.append(job.id)
    assert store.delete_job(ids[-1])  # the highest: SQLite alone would give its id again
    store.close()
    reopened = backend.open()
    try:
        again = reopened.create_job("/in", "ep9.wav", [make_input("ep9.wav", "9" * 64)], {})
        assert again is not None and again.id == ids[-1] + 1
        assert reopened.get(ids[-1]) is None
    finally:
        reopened.close()


def test_meta_state_has_typed_methods(store: Store) -> None:
    assert store.account_pause() is None
    store.set_account_pause("no credits")
    store.set_account_pause("bad key")
    assert store.account_pause() == "bad key"
    store.set_account_pause(None)
    assert store.account_pause() is None
    store.set_hold(ALL_FOLDERS, "until Monday")
    store.set_hold("/in", "checking")
    assert store.holds() == {ALL_FOLDERS: "until Monday", "/in": "checking"}
    store.set_hold(ALL_FOLDERS, None)
    assert store.holds() == {"/in": "checking"}
    before = store.forget_generation()
    store.bump_forget_generation()
    assert store.forget_generation() != before
    store.set_unavailable_folders({"show": "the share is not mounted"})
    assert store.unavailable_folders() == {"show": "the share is not mounted"}
    store.set_unavailable_folders({})
    assert store.unavailable_folders() == {}
    entry = {"folder": "show", "path": "/in/x.wav", "reason": "a FIFO"}
    store.set_refused_entries([entry])
    assert store.refused_entries() == [entry]


def test_inspect_reads_without_creating_or_migrating(state_dir: Path) -> None:
    assert Store.inspect(state_dir) is None and not state_dir.exists()
    Store.open(state_dir).close()
    db = state_dir / DB_NAME
    before = db.stat().st_mtime_ns
    assert Store.inspect(state_dir) == (SCHEMA_VERSION, 0)
    assert db.stat().st_mtime_ns == before


def test_second_daemon_on_same_state_dir_is_refused(state_dir: Path) -> None:
    first = Store.open(state_dir, daemon=True)
    try:
        assert daemon_pid(state_dir) == os.getpid()
        # a second daemon, in another process, must fail and say why
        code = (
            "import sys; from pathlib import Path; from cvsyncd.jobs import Store\n"
            "from cvsyncd.errors import StoreLocked\n"
            "try:\n    Store.open(Path(sys.argv[1]), daemon=True)\n"
            "except StoreLocked as e:\n    print(e); sys.exit(3)\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code, str(state_dir)], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 3
        assert f"pid {os.getpid()}" in proc.stdout
        # commands that only read may still open it
        reader = Store.open(state_dir)
        reader.close()
    finally:
        first.close()
    assert daemon_pid(state_dir) is None
    Store.open(state_dir, daemon=True).close()


def test_lock_is_released_by_the_kernel_when_the_daemon_dies(state_dir: Path) -> None:
    code = (
        "import os, sys; from pathlib import Path; from cvsyncd.jobs import Store\n"
        "Store.open(Path(sys.argv[1]), daemon=True); print('locked', flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(state_dir)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -9 and "locked" in proc.stdout
    Store.open(state_dir, daemon=True).close()


@pytest.mark.parametrize("kind, wakes", [("daemon", True), ("daemon", False), ("process", True)])
def test_only_a_daemon_that_says_it_handles_the_wake_signal_is_sent_it(
    state_dir: Path, kind: str, wakes: bool
) -> None:
    """SIGUSR1 ends a process that does not expect it: an older daemon, or `process`."""
    code = (
        "import signal, sys; from pathlib import Path; from cvsyncd.jobs import Store\n"
        "signal.signal(signal.SIGUSR1, lambda *a: print('woken', flush=True))\n"
        "Store.open(Path(sys.argv[1]), daemon=True, kind=sys.argv[2], wakes=sys.argv[3] == '1')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"  # holds the lock until the test closes stdin
    )
    with subprocess.Popen(
        [sys.executable, "-c", code, str(state_dir), kind, str(int(wakes))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdin is not None and holder.stdout is not None
        try:
            assert holder.stdout.readline() == "locked\n"
            expected = kind == "daemon" and wakes
            assert wake_daemon(state_dir) is expected
            holder.stdin.close()  # the holder ends; its output says whether it was signalled
            assert holder.wait(timeout=60) == 0
            assert ("woken" in holder.stdout.read()) is expected
        finally:
            holder.kill()
    assert wake_daemon(state_dir) is False  # nobody holds the lock now


def test_database_from_a_newer_version_is_refused_and_left_alone(state_dir: Path) -> None:
    Store.open(state_dir).close()
    db = state_dir / DB_NAME
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = db.read_bytes()
    with pytest.raises(StoreTooNew, match="newer cvsyncd"):
        Store.open(state_dir)
    assert db.read_bytes() == before


def test_corrupt_database_is_refused_and_never_recreated(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o700)
    db = state_dir / DB_NAME
    db.write_bytes(b"this is not a database" * 100)
    before = db.read_bytes()
    with pytest.raises(StoreCorrupt, match="damaged") as info:
        Store.open(state_dir)
    assert "mv " in str(info.value)  # says how to start afresh
    assert db.read_bytes() == before


def test_damaged_pages_fail_the_quick_check(state_dir: Path) -> None:
    s = Store.open(state_dir)
    for i in range(300):
        s.create_job("/in", f"f{i}.wav", [make_input(f"f{i}.wav", f"{i:064d}")], OPTIONS)
    s._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    s.close()
    db = state_dir / DB_NAME
    data = bytearray(db.read_bytes())
    page = 4096
    for offset in range(2 * page + 100, len(data) - page, page * 3):
        data[offset : offset + 200] = b"\xff" * 200  # scribble over b-tree pages, keep the header
    db.write_bytes(bytes(data))
    with pytest.raises(StoreCorrupt):
        Store.open(state_dir)


def test_network_filesystem_is_refused(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # no NFS server can run here: the mount table lookup is replaced, the refusal is real
    monkeypatch.setattr(fsinfo, "filesystem_type", lambda path: "nfs4")
    with pytest.raises(StoreError, match="nfs4 filesystem"):
        Store.open(state_dir)


def test_a_version_1_database_is_migrated_and_keeps_its_jobs(state_dir: Path) -> None:
    """A database written by the first release (schema 1) gains the inputs' change time and
    inode (2) and the jobs' summaries (3); its jobs stay, with those unknown (None)."""
    state_dir.mkdir(mode=0o700)
    conn = sqlite3.connect(state_dir / DB_NAME)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO jobs (folder, name, fingerprint, options, options_key, state,"
        " created_at, updated_at) VALUES ('/in', 'a.wav', 'f', '{}', '{}', 'done', 1, 1)"
    )
    conn.execute("INSERT INTO inputs VALUES (1, 0, 'a.wav', 10, 20, 'f', NULL)")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    store = Store.open(state_dir)
    try:
        assert store.schema_version() == SCHEMA_VERSION >= 2
        job = store.get(1)
        assert job is not None and job.state is S.DONE
        assert job.inputs[0] == InputFile("a.wav", 10, 20, "f")
        assert job.inputs[0].ctime_ns is None and job.inputs[0].inode is None
        [summary] = store.summaries_json(Listing())
        assert json.loads(summary) == job_summary(job)
    finally:
        store.close()


def test_a_migration_another_process_made_meanwhile_is_not_made_again(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cvsyncd status` run while the daemon creates the database read version 0, waited
    for the daemon's write lock, then ran CREATE TABLE again: "table meta already exists"
    (seen in tests/e2e/test_swaps.py under load). The version is read again under the lock.
    The other process is made to finish first here, and this one's earlier read of the
    version is replayed (the real interleaving depends on timing)."""
    Store.open(state_dir).close()  # the other process created and migrated the database
    late = Store(connect(state_dir / DB_NAME), state_dir / DB_NAME, None)
    reads = [0]  # the first read is the stale one; the later ones are real
    real = late.schema_version
    monkeypatch.setattr(late, "schema_version", lambda: reads.pop() if reads else real())
    late._migrate()
    assert real() == SCHEMA_VERSION
    late.close()


def test_kill_during_the_second_migration_keeps_version_1(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o700)
    conn = sqlite3.connect(state_dir / DB_NAME)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    code = (
        "import sys; from pathlib import Path; from cvsyncd.jobs import Store\n"
        "Store.open(Path(sys.argv[1])).close()\n"
    )
    env = {**os.environ, "CVSYNCD_FAILPOINTS": "migrate.statement:1"}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(state_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -9  # killed after the first ALTER TABLE of migration 2
    conn = sqlite3.connect(state_dir / DB_NAME)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        columns = [r[1] for r in conn.execute("PRAGMA table_info(inputs)")]
        assert "ctime_ns" not in columns
    finally:
        conn.close()
    Store.open(state_dir).close()  # and the migration then succeeds


def test_request_budget_counts_requests_in_a_window(store: Store) -> None:
    window = 1.5
    assert [store.take_request("submit", 3, window) for _ in range(3)] == [0.0] * 3
    wait = store.take_request("submit", 3, window)
    assert 0 < wait <= window
    assert store.requests_in_window("submit", window) == 3  # the refused one is not counted
    assert store.take_request("status", 3, window) == 0.0  # each budget apart
    wait_until(lambda: store.take_request("submit", 3, window) == 0.0, "room in the budget", 10)
    store.close_requests("submit", 30)  # a 429 answer: nothing for 30 s
    assert 25 < store.take_request("submit", 100, window) <= 30


def test_serialized_makes_the_body_one_transaction(store: Store) -> None:
    """A check and the step it allows: all of it, or (on an error) none of it."""
    with pytest.raises(RuntimeError), store.serialized():
        store.create_job("/in", "a.wav", [make_input("a.wav", "1" * 64)], {})
        store.set_hold(ALL_FOLDERS, "x")
        raise RuntimeError("the check failed after the writes")
    assert store.jobs() == [] and store.holds() == {}
    with store.serialized():
        job = store.create_job("/in", "a.wav", [make_input("a.wav", "1" * 64)], {})
        assert job is not None
        store.transition(job.id, S.QUEUED, S.UPLOADING)
    assert store.get(job.id).state is S.UPLOADING  # type: ignore[union-attr]


def test_mine_is_every_job_of_a_store_of_one_site(store: Store) -> None:
    job = store.create_job("/in", "a.wav", [make_input("a.wav", "1" * 64)], {})
    assert job is not None and job.site == store.site
    assert [j.id for j in store.jobs(mine=True)] == [job.id]
    assert store.count_by_state([S.QUEUED], mine=True) == {S.QUEUED: 1}


def test_the_spend_guards_records_and_the_ledger(store: Store) -> None:
    """What counts against a cap, held jobs and waking them, the ledger of done jobs, the
    backlog decision, and the other questions the pipeline asks."""
    from cvsyncd.jobs.spending import Backlog

    now = time.time()
    made = []
    for n in range(5):
        job = store.create_job("/in", f"r{n}.wav", [make_input(f"r{n}.wav", str(n) * 64)], {})
        assert job is not None
        made.append(job.id)
    spend = {"spend": {"at": now, "hours": 0.25}}
    # r0: spent and done (counts, in the ledger); r1: spent then back to the queue (does not
    # count); r2: spent, submitted, failed (counts: it may be billed); r3 held; r4 queued
    store.transition(made[0], S.QUEUED, S.UPLOADING, facts={**spend, "duration": 900.0})
    for a, b in itertools.pairwise(HAPPY[1:]):
        store.transition(made[0], a, b)
    store.update(made[0], S.DONE, None, finished_at=now, facts={**spend, "duration": 900.0})
    store.transition(made[1], S.QUEUED, S.UPLOADING, facts=spend)
    store.transition(made[1], S.UPLOADING, S.QUEUED)
    store.transition(made[2], S.QUEUED, S.UPLOADING, facts=spend)
    store.transition(made[2], S.UPLOADING, S.UPLOADED)
    store.transition(made[2], S.UPLOADED, S.SUBMITTING, submitted_at=now)
    store.transition(made[2], S.SUBMITTING, S.FAILED, attempts=2)
    hold = {"kind": "cap_day", "reason": "over the day's cap"}
    store.transition(made[3], S.QUEUED, S.HELD, facts={"hold": hold}, next_attempt_at=now + 999)
    assert store.spent(now - 1, now + 1) == Spent(0.5, 2)
    assert store.spent(now - 1, now + 1, folder="/in").recordings == 2
    assert store.spent(now + 1, now + 2) == Spent(0.0, 0)
    assert store.held_jobs() == [(made[3], "/in", hold)]
    assert store.held_jobs(["/other"]) == []
    assert store.wake_held(["cap_month"]) == 0
    assert store.wake_held(["cap_day", "credit"]) == 1
    assert store.get(made[3]).next_attempt_at == 0  # type: ignore[union-attr]
    [row] = list(store.usage(now - 1, now + 1))
    assert (row.job_id, row.folder, row.name, row.seconds) == (made[0], "/in", "r0.wav", 900.0)
    assert store.submitted_between(now - 1, now + 1) == [made[2]]
    assert store.has_jobs("/in") and not store.has_jobs("/other")
    assert store.count_retrying() == 0
    store.update(made[4], S.QUEUED, None, attempts=1)
    assert store.count_retrying() == 1
    assert store.oldest_working_since() is not None
    assert store.count_by_folder() == {"/in": {S.DONE: 1, S.QUEUED: 2, S.FAILED: 1, S.HELD: 1}}
    assert store.backlog("/in") is None
    decided = Backlog("hold", "auto", 3.5, now, {"a.wav": [1, 2], "session": None})
    store.set_backlog("/in", decided)
    assert store.backlog("/in") == decided
    store.set_backlog("/in", None)
    assert store.backlog("/in") is None
    again = store.create_job("/in", "r4.wav", [make_input("r4.wav", "9" * 64)], {})
    assert again is not None
    assert store.newer_job_for_name("/in", "r4.wav", made[4]).id == again.id  # type: ignore[union-attr]
    assert [e[1] for e in store.events(made[1])] == [S.QUEUED, S.UPLOADING, S.QUEUED]
    assert [d.id for d in store.due(S.QUEUED, now, 10)] == [made[1], made[4], again.id]
    assert [d.id for d in store.due(S.QUEUED, now, 1, after=(0.0, made[1]))] == [made[4]]


def test_asking_about_no_states_or_kinds_finds_nothing(store: Store) -> None:
    """`retry --all` with nothing to retry asks for jobs in no state: an empty answer, on
    both stores (PostgreSQL refuses an empty `IN ()`)."""
    job = store.create_job("/in", "a.wav", [make_input("a.wav", "1" * 64)], {})
    assert job is not None
    assert store.jobs([]) == []
    assert store.count_by_state([]) == {}
    assert store.wake_held([]) == 0
    assert store.held_jobs([]) == []


def test_a_python_with_too_old_an_sqlite_is_refused_saying_what_to_do() -> None:
    # the SQLite library of this Python cannot be swapped for an old one in a test: the
    # check is given the version an old one would report
    from cvsyncd.jobs.database import check_sqlite

    with pytest.raises(StoreError, match=r"needs SQLite 3\.35\.0 or newer.*uses SQLite 3\.31\.1"):
        check_sqlite((3, 31, 1))
    check_sqlite((3, 35, 0))
    check_sqlite()  # this Python's own, which the rest of the tests use
