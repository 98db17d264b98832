"""The SQLite job store: the only module that touches the state database.

Durability rules (see RELIABILITY.md, promise 4): WAL journal, ``synchronous=FULL``, a
busy timeout, and every write inside ``BEGIN IMMEDIATE … COMMIT`` so a crash leaves either
the old or the new row. The schema is versioned with ``PRAGMA user_version``; each migration
runs in one transaction, and a database written by a newer cvsyncd is refused, never
"repaired". Rows come back as the dataclasses of ``jobs.py``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from cvsyncd import fsinfo
from cvsyncd.errors import StoreCorrupt, StoreError, StoreLocked, StoreTooNew
from cvsyncd.failpoints import failpoint
from cvsyncd.jobs import ACTIVE, InputFile, Job, JobState, check_transition
from cvsyncd.migrations import MIGRATIONS as MIGRATIONS  # re-exported for the tests
from cvsyncd.migrations import SCHEMA_VERSION

DB_NAME = "cvsyncd.sqlite3"
# the keys of the meta table, used only here (the typed methods of Store stand for them)
META_ACCOUNT_PAUSE = "paused"
META_HOLD = "hold:"  # + a folder key, or ALL_FOLDERS
META_FORGET = "forget_generation"
META_UNAVAILABLE = "folders_unavailable"
META_REFUSED = "inbox_refused"
META_LAST_JOB = "last_job_id"
ALL_FOLDERS = "*"
LOCK_NAME = "daemon.lock"
BUSY_TIMEOUT_MS = 10_000
LOCK_ATTEMPTS = 10


# Columns a caller may set together with (or without) a state change.
UPDATABLE = frozenset(
    {
        "attempts",
        "next_attempt_at",
        "edit_id",
        "progress",
        "result",
        "outputs",
        "disposed_to",
        "error",
        "facts",
        "submitted_at",
        "finished_at",
        "fingerprint",
    }
)
JSON_COLUMNS = frozenset({"progress", "result", "outputs", "facts"})


class JsonText(str):
    """A value for a JSON column that is already JSON text (made off the event loop)."""


def options_key(options: Mapping[str, Any]) -> str:
    """Return a canonical text of an edit config, equal for equal configs."""
    return json.dumps(options, sort_keys=True, separators=(",", ":"))


class StateDirLock:
    """An exclusive lock on a state directory, held for the life of a daemon."""

    def __init__(self, state_dir: Path, kind: str = "daemon"):
        self.path = state_dir / LOCK_NAME
        self.kind = kind  # "daemon", or "process" for a foreground `cvsyncd process`
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise StoreLocked naming the process that holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if not _try_lock(fd, attempts=LOCK_ATTEMPTS):
            pid, _, kind = os.read(fd, 64).decode("ascii", "replace").strip().partition(" ")
            os.close(fd)
            who = "a `cvsyncd process` run" if kind == "process" else "another cvsyncd daemon"
            raise StoreLocked(
                f"{who} (pid {pid or '?'}) is already using the state directory "
                f"{self.path.parent}; stop it first, or give this one its own state_dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {self.kind}".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _try_lock(fd: int, attempts: int = 1) -> bool:
    """Try to take an exclusive lock; a few tries ride out a status command's probe."""
    for attempt in range(attempts):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt + 1 < attempts:
                time.sleep(0.1)
    return False


def lock_holder(state_dir: Path) -> tuple[int, str] | None:
    """Who holds ``state_dir`` now: (pid, "daemon" or "process"), or None if nobody."""
    try:
        fd = os.open(state_dir / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return None
    try:
        if _try_lock(fd):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        pid, _, kind = os.read(fd, 64).decode("ascii", "replace").strip().partition(" ")
        return (int(pid) if pid.isdigit() else -1), (kind or "daemon")
    finally:
        os.close(fd)


def daemon_pid(state_dir: Path) -> int | None:
    """Return the pid of the daemon (or ``process`` run) holding ``state_dir``, or None."""
    holder = lock_holder(state_dir)
    return holder[0] if holder else None


def prepare_state_dir(state_dir: Path) -> None:
    """Create the state directory private to its owner; refuse network filesystems."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):
        os.chmod(state_dir, 0o700)
    fstype = fsinfo.filesystem_type(state_dir)
    if fsinfo.is_network_filesystem(fstype):
        raise StoreError(
            f"the state directory {state_dir} is on a {fstype} filesystem; SQLite's locking "
            "and fsync are not reliable there, so cvsyncd refuses it. Set [daemon] state_dir "
            "to a folder on a local disk (the inboxes and outboxes may stay on the share)"
        )


class Store:
    """The job store. Open it with ``Store.open``; close it when done."""

    def __init__(self, conn: sqlite3.Connection, path: Path, lock: StateDirLock | None):
        self._conn = conn
        self.path = path
        self._lock = lock

    # -- opening -----------------------------------------------------------------------

    @classmethod
    def open(cls, state_dir: Path, *, daemon: bool = False, kind: str = "daemon") -> Store:
        """Open (creating and migrating if need be) the store in ``state_dir``.

        With ``daemon=True`` the state directory is locked for this process, so a second
        daemon on the same directory fails with StoreLocked. Raise StoreCorrupt when the
        database fails its integrity check and StoreTooNew when a newer cvsyncd wrote it.
        """
        prepare_state_dir(state_dir)
        lock = None
        if daemon:
            lock = StateDirLock(state_dir, kind)
            lock.acquire()
        path = state_dir / DB_NAME
        try:
            conn = _connect(path)
            store = cls(conn, path, lock)
            store._check_integrity()
            store._migrate()
        except BaseException:
            if lock:
                lock.release()
            raise
        return store

    @staticmethod
    def inspect(state_dir: Path) -> tuple[int, int] | None:
        """(schema version, number of jobs) of the state database, read without creating,
        migrating or changing anything; None if there is none yet. Raise StoreCorrupt,
        StoreTooNew as ``open`` would."""
        path = state_dir / DB_NAME
        if not path.exists():
            return None
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        except sqlite3.Error as exc:
            raise StoreError(f"the state database {path} cannot be read: {exc}") from None
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
            if [r[0] for r in rows] != ["ok"]:
                raise _corrupt(path, "; ".join(str(r[0]) for r in rows[:3]))
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise StoreTooNew(
                    f"the state database {path} was written by a newer cvsyncd (schema "
                    f"{version}; this one knows up to {SCHEMA_VERSION})"
                )
            jobs = conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] if version else 0
        except sqlite3.DatabaseError as exc:
            raise _corrupt(path, str(exc)) from None
        finally:
            conn.close()
        return version, int(jobs)

    @classmethod
    def open_existing(cls, state_dir: Path) -> Store | None:
        """Open the store for a command that only reads or edits jobs; None if none exists."""
        if not (state_dir / DB_NAME).exists():
            return None
        return cls.open(state_dir)

    def close(self) -> None:
        self._conn.close()
        if self._lock:
            self._lock.release()

    def _check_integrity(self) -> None:
        try:
            rows = self._conn.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as exc:
            raise _corrupt(self.path, str(exc)) from None
        if [r[0] for r in rows] != ["ok"]:
            raise _corrupt(self.path, "; ".join(str(r[0]) for r in rows[:3]))

    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise StoreTooNew(
                f"the state database {self.path} has schema version {version}, but this "
                f"cvsyncd only knows versions up to {SCHEMA_VERSION}: it was written by a "
                "newer cvsyncd. Install that version again; cvsyncd will not change the file"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self._write():
                for statement in MIGRATIONS[target - 1]:
                    self._conn.execute(statement)
                    failpoint("migrate.statement")
                self._conn.execute(f"PRAGMA user_version = {target}")
            failpoint("migrate.committed")

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """Run the body in one ``BEGIN IMMEDIATE`` transaction; roll back on any error."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # -- creating jobs -------------------------------------------------------------------

    def create_job(
        self,
        folder: str,
        name: str,
        inputs: Sequence[InputFile],
        options: Mapping[str, Any],
        *,
        fingerprint: str | None = None,
        facts: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> Job | None:
        """Create a queued job; return None if this (folder, name, fingerprint) has one."""
        now = time.time() if now is None else now
        fingerprint = fingerprint or inputs[0].fingerprint
        with self._write() as conn:
            job_id = self._next_job_id(conn)
            cur = conn.execute(
                "INSERT OR IGNORE INTO jobs (id, folder, name, fingerprint, options, options_key,"
                " state, facts, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    folder,
                    name,
                    fingerprint,
                    json.dumps(options),
                    options_key(options),
                    JobState.QUEUED.value,
                    json.dumps(dict(facts or {})),
                    now,
                    now,
                ),
            )
            if cur.rowcount == 0:
                return None
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (META_LAST_JOB, str(job_id)),
            )
            conn.executemany(
                "INSERT INTO inputs (job_id, position, rel_path, size, mtime_ns, fingerprint,"
                " ctime_ns, inode) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (job_id, i, f.rel_path, f.size, f.mtime_ns, f.fingerprint, f.ctime_ns, f.inode)
                    for i, f in enumerate(inputs)
                ],
            )
            _add_event(conn, job_id, JobState.QUEUED, "taken from the inbox", now)
        return self.get(job_id)

    def _next_job_id(self, conn: sqlite3.Connection) -> int:
        """The id for a new job: above every id ever given, so that an id in an old message
        (``cvsyncd retry 3``) never names another recording after ``forget``."""
        last = conn.execute("SELECT value FROM meta WHERE key = ?", (META_LAST_JOB,)).fetchone()
        highest = conn.execute("SELECT MAX(id) FROM jobs").fetchone()[0] or 0
        return max(int(last[0]) if last else 0, int(highest)) + 1

    # -- state changes -------------------------------------------------------------------

    def transition(
        self,
        job_id: int,
        current: JobState,
        new: JobState,
        message: str | None = None,
        **fields: Any,
    ) -> Job:
        """Move a job from ``current`` to ``new`` (and set ``fields``) in one transaction.

        Raise StoreError if the job is no longer in ``current`` — someone else moved it.
        """
        check_transition(current, new)
        return self._update(job_id, current, new, message, fields)

    def update(
        self, job_id: int, state: JobState, message: str | None = None, **fields: Any
    ) -> Job:
        """Set ``fields`` of a job that must still be in ``state``."""
        return self._update(job_id, state, state, message, fields)

    def _update(
        self,
        job_id: int,
        current: JobState,
        new: JobState,
        message: str | None,
        fields: Mapping[str, Any],
    ) -> Job:
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        now = time.time()
        values = {
            k: (v if isinstance(v, JsonText) or k not in JSON_COLUMNS else json.dumps(v))
            for k, v in fields.items()
        }
        values["state"] = new.value
        values["updated_at"] = now
        assignments = ", ".join(f"{k} = ?" for k in values)
        with self._write() as conn:
            cur = conn.execute(
                f"UPDATE jobs SET {assignments} WHERE id = ? AND state = ?",
                (*values.values(), job_id, current.value),
            )
            if cur.rowcount != 1:
                raise StoreError(f"job {job_id} is no longer {current}; not changed")
            if message or new != current:
                _add_event(conn, job_id, new, message, now)
        job = self.get(job_id)
        assert job is not None
        return job

    def set_input(self, job_id: int, position: int, **fields: Any) -> None:
        """Update one input row: its upload URL, or its size/mtime/fingerprint after a re-read."""
        allowed = {"file_url", "size", "mtime_ns", "fingerprint", "ctime_ns", "inode"}
        if not fields or set(fields) - allowed:
            raise ValueError(f"input fields must be among {sorted(allowed)}")
        assignments = ", ".join(f"{k} = ?" for k in fields)
        with self._write() as conn:
            conn.execute(
                f"UPDATE inputs SET {assignments} WHERE job_id = ? AND position = ?",
                (*fields.values(), job_id, position),
            )

    def requeue(self, job_id: int, message: str) -> Job:
        """Send a finished job back to the queue, from scratch (``cvsyncd retry``).

        Only failed, needs_attention and duplicate jobs can be requeued; everything learnt
        about the previous attempt (edit id, uploads, result, outputs) is cleared, and the
        previous edit id kept among the facts.
        """
        job = self.get(job_id)
        if job is None:
            raise StoreError(f"there is no job {job_id}")
        check_transition(job.state, JobState.QUEUED)
        facts = {k: v for k, v in job.facts.items() if k not in ("duplicate_of", "polls")}
        if job.edit_id:
            facts["previous_edits"] = [*facts.get("previous_edits", []), job.edit_id]
        facts["retries"] = int(facts.get("retries", 0)) + 1
        now = time.time()
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE jobs SET state = ?, attempts = 0, next_attempt_at = 0, edit_id = NULL,"
                " progress = NULL, result = NULL, outputs = '[]', disposed_to = NULL,"
                " error = NULL, facts = ?, submitted_at = NULL, finished_at = NULL,"
                " updated_at = ? WHERE id = ? AND state = ?",
                (JobState.QUEUED.value, json.dumps(facts), now, job_id, job.state.value),
            )
            if cur.rowcount != 1:
                raise StoreError(f"job {job_id} changed meanwhile; not requeued")
            conn.execute("UPDATE inputs SET file_url = NULL WHERE job_id = ?", (job_id,))
            _add_event(conn, job_id, JobState.QUEUED, message, now)
        requeued = self.get(job_id)
        assert requeued is not None
        return requeued

    def resume_edit(self, job_id: int, message: str) -> Job:
        """Send a failed job whose edit is still at Cleanvoice back to polling that edit
        (``cvsyncd retry``): its results are fetched again, nothing is submitted again."""
        job = self.get(job_id)
        if job is None:
            raise StoreError(f"there is no job {job_id}")
        check_transition(job.state, JobState.PROCESSING)
        facts = {**job.facts, "polls": 0, "retries": int(job.facts.get("retries", 0)) + 1}
        now = time.time()
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE jobs SET state = ?, attempts = 0, next_attempt_at = 0, progress = NULL,"
                " result = NULL, outputs = '[]', disposed_to = NULL, error = NULL, facts = ?,"
                " finished_at = NULL, updated_at = ? WHERE id = ? AND state = ?",
                (JobState.PROCESSING.value, json.dumps(facts), now, job_id, job.state.value),
            )
            if cur.rowcount != 1:
                raise StoreError(f"job {job_id} changed meanwhile; not resumed")
            _add_event(conn, job_id, JobState.PROCESSING, message, now)
        resumed = self.get(job_id)
        assert resumed is not None
        return resumed

    def newer_job_for_name(self, folder: str, name: str, job_id: int) -> Job | None:
        """The newest job after ``job_id`` that took a file under the same name, if any."""
        row = self._conn.execute(
            "SELECT * FROM jobs WHERE folder = ? AND name = ? AND id > ? ORDER BY id DESC LIMIT 1",
            (folder, name, job_id),
        ).fetchone()
        return self._job(row) if row else None

    def delete_job(self, job_id: int) -> bool:
        """Forget a job entirely (its inputs and history too). Return whether it existed."""
        with self._write() as conn:
            return conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount == 1

    # -- queries -------------------------------------------------------------------------

    def get(self, job_id: int) -> Job | None:
        row = self._conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self._job(row) if row else None

    def jobs(self, states: Iterable[JobState] | None = None, limit: int | None = None) -> list[Job]:
        """Return jobs, newest first, optionally only those in ``states``."""
        sql, args = "SELECT * FROM jobs", []
        if states is not None:
            wanted = [s.value for s in states]
            sql += f" WHERE state IN ({_marks(wanted)})"
            args.extend(wanted)
        sql += " ORDER BY id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [self._job(r) for r in self._conn.execute(sql, args).fetchall()]

    def due_jobs(self, now: float, exclude: Iterable[int] = ()) -> list[Job]:
        """Return active jobs whose next attempt is due, oldest first."""
        skip = set(exclude)
        active = [s.value for s in ACTIVE]
        rows = self._conn.execute(
            f"SELECT * FROM jobs WHERE state IN ({_marks(active)})"
            " AND next_attempt_at <= ? ORDER BY next_attempt_at, id",
            (*active, now),
        ).fetchall()
        return [self._job(r) for r in rows if r["id"] not in skip]

    def next_due_at(self, after: float = 0.0) -> float | None:
        """Return the earliest next-attempt time after ``after`` among active jobs, or None."""
        active = [s.value for s in ACTIVE]
        row = self._conn.execute(
            f"SELECT MIN(next_attempt_at) FROM jobs WHERE state IN ({_marks(active)})"
            " AND next_attempt_at > ?",
            (*active, after),
        ).fetchone()
        return None if row[0] is None else float(row[0])

    def count_by_state(self, states: Iterable[JobState] | None = None) -> dict[JobState, int]:
        """Jobs per state; with ``states``, only those (cheap: read from the index)."""
        if states is None:
            rows = self._conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state")
        else:
            wanted = [s.value for s in states]
            rows = self._conn.execute(
                f"SELECT state, COUNT(*) FROM jobs WHERE state IN ({_marks(wanted)})"
                " GROUP BY state",
                wanted,
            )
        return {JobState(r[0]): int(r[1]) for r in rows.fetchall()}

    def count_by_folder(self) -> dict[str, dict[JobState, int]]:
        """Jobs per folder (its key) and state."""
        rows = self._conn.execute(
            "SELECT folder, state, COUNT(*) FROM jobs GROUP BY folder, state"
        ).fetchall()
        out: dict[str, dict[JobState, int]] = {}
        for folder, state, count in rows:
            out.setdefault(str(folder), {})[JobState(state)] = int(count)
        return out

    def count_retrying(self) -> int:
        """Active jobs that failed a step at least once and wait for another try."""
        active = [s.value for s in ACTIVE]
        row = self._conn.execute(
            f"SELECT COUNT(*) FROM jobs WHERE state IN ({_marks(active)}) AND attempts > 0",
            active,
        ).fetchone()
        return int(row[0])

    def find_by_input(self, folder: str, rel_path: str, size: int, mtime_ns: int) -> Job | None:
        """Return the newest job that took exactly this file (same path, size and mtime)."""
        row = self._conn.execute(
            "SELECT jobs.* FROM inputs JOIN jobs ON jobs.id = inputs.job_id"
            " WHERE jobs.folder = ? AND inputs.rel_path = ? AND inputs.size = ?"
            " AND inputs.mtime_ns = ? ORDER BY jobs.id DESC LIMIT 1",
            (folder, rel_path, size, mtime_ns),
        ).fetchone()
        return self._job(row) if row else None

    def find_by_identity(self, folder: str, name: str, fingerprint: str) -> Job | None:
        row = self._conn.execute(
            "SELECT * FROM jobs WHERE folder = ? AND name = ? AND fingerprint = ?",
            (folder, name, fingerprint),
        ).fetchone()
        return self._job(row) if row else None

    def find_pending_for_name(self, folder: str, name: str) -> Job | None:
        """Return a job for this name that has not been submitted yet, if any."""
        row = self._conn.execute(
            "SELECT * FROM jobs WHERE folder = ? AND name = ? AND state IN (?, ?, ?)"
            " ORDER BY id DESC LIMIT 1",
            (
                folder,
                name,
                JobState.QUEUED.value,
                JobState.UPLOADING.value,
                JobState.UPLOADED.value,
            ),
        ).fetchone()
        return self._job(row) if row else None

    def find_same_content(
        self, fingerprint: str, options: Mapping[str, Any], exclude: int | None = None
    ) -> Job | None:
        """Return the oldest other job with the same content and effective options.

        Failed jobs and duplicates do not count: they hold no results to point to.
        """
        row = self._conn.execute(
            "SELECT * FROM jobs WHERE fingerprint = ? AND options_key = ? AND id IS NOT ?"
            " AND state NOT IN (?, ?) ORDER BY id LIMIT 1",
            (
                fingerprint,
                options_key(options),
                exclude,
                JobState.FAILED.value,
                JobState.DUPLICATE.value,
            ),
        ).fetchone()
        return self._job(row) if row else None

    def events(self, job_id: int) -> list[tuple[float, JobState, str | None]]:
        rows = self._conn.execute(
            "SELECT at, state, message FROM events WHERE job_id = ? ORDER BY id", (job_id,)
        ).fetchall()
        return [(float(r[0]), JobState(r[1]), r[2]) for r in rows]

    # -- daemon-wide state kept beside the jobs (typed: no caller invents a key) ------

    def account_pause(self) -> str | None:
        """Why new work is paused for the account (a refused key, no credit), or None."""
        return self.get_meta(META_ACCOUNT_PAUSE)

    def set_account_pause(self, reason: str | None) -> None:
        self.set_meta(META_ACCOUNT_PAUSE, reason)

    def holds(self) -> dict[str, str]:
        """``cvsyncd pause``: folder key (or ALL_FOLDERS) → the note, for held folders."""
        return self.meta_items(META_HOLD)

    def set_hold(self, folder_key: str, note: str | None) -> None:
        """Hold back new work of one folder (or ALL_FOLDERS); ``None`` lets it go."""
        self.set_meta(META_HOLD + folder_key, note)

    def forget_generation(self) -> str | None:
        """Changes whenever ``cvsyncd forget`` ran: a running daemon then rescans."""
        return self.get_meta(META_FORGET)

    def bump_forget_generation(self) -> None:
        self.set_meta(META_FORGET, str(time.time()))

    def unavailable_folders(self) -> dict[str, str]:
        """Folders whose inbox the running daemon cannot use now, and why."""
        text = self.get_meta(META_UNAVAILABLE)
        return dict(json.loads(text)) if text else {}

    def set_unavailable_folders(self, folders: Mapping[str, str]) -> None:
        self.set_meta(
            META_UNAVAILABLE, json.dumps(dict(folders), sort_keys=True) if folders else None
        )

    def refused_entries(self) -> list[dict[str, str]]:
        """Inbox entries the running daemon does not take, with why (for ``status``)."""
        text = self.get_meta(META_REFUSED)
        return list(json.loads(text)) if text else []

    def set_refused_entries(self, entries: Sequence[Mapping[str, str]]) -> None:
        self.set_meta(META_REFUSED, json.dumps([dict(e) for e in entries]) if entries else None)

    def get_meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def meta_items(self, prefix: str) -> dict[str, str]:
        """All meta values whose key starts with ``prefix`` (the prefix removed)."""
        rows = self._conn.execute(
            "SELECT key, value FROM meta WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)
        ).fetchall()
        return {str(r[0])[len(prefix) :]: str(r[1]) for r in rows}

    def set_meta(self, key: str, value: str | None) -> None:
        with self._write() as conn:
            if value is None:
                conn.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )

    def _job(self, row: sqlite3.Row) -> Job:
        inputs = self._conn.execute(
            "SELECT rel_path, size, mtime_ns, fingerprint, file_url, ctime_ns, inode FROM inputs"
            " WHERE job_id = ? ORDER BY position",
            (row["id"],),
        ).fetchall()
        return Job(
            id=row["id"],
            folder=row["folder"],
            name=row["name"],
            fingerprint=row["fingerprint"],
            options=json.loads(row["options"]),
            state=JobState(row["state"]),
            inputs=tuple(InputFile(*i) for i in inputs),
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"],
            edit_id=row["edit_id"],
            progress=_loads(row["progress"]),
            result_text=row["result"],
            outputs=tuple(json.loads(row["outputs"])),
            disposed_to=row["disposed_to"],
            error=row["error"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            submitted_at=row["submitted_at"],
            finished_at=row["finished_at"],
            facts=json.loads(row["facts"]),
        )


def _connect(path: Path) -> sqlite3.Connection:
    """Open the database file private to its owner, with the durability pragmas set."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as exc:
        raise _corrupt(path, str(exc)) from None
    if str(mode).lower() != "wal":
        conn.close()
        raise StoreError(f"the state database {path} cannot use WAL journaling (got {mode})")
    return conn


def _corrupt(path: Path, detail: str) -> StoreCorrupt:
    return StoreCorrupt(
        f"the state database {path} is damaged ({detail}). cvsyncd has not changed it and "
        f"will not start on it. Keep a copy for diagnosis; to start afresh, move it aside "
        f"(mv {path} {path}.damaged) — jobs in progress would then be forgotten and the "
        "inboxes scanned anew"
    )


def _add_event(
    conn: sqlite3.Connection, job_id: int, state: JobState, message: str | None, now: float
) -> None:
    conn.execute(
        "INSERT INTO events (job_id, at, state, message) VALUES (?, ?, ?, ?)",
        (job_id, now, state.value, message),
    )


def _marks(values: Sequence[object]) -> str:
    """The ``?, ?, ?`` placeholders for an ``IN (…)`` list of ``values``."""
    return ", ".join("?" * len(values))


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)
