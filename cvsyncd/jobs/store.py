"""The SQLite job store: the only place that touches the state database.

``Store`` is the write side (creating jobs, moving them between states, the operator's
requeue and resume), on top of the queries (``queries.py``), the spend guard's records
(``spending.py``), the daemon-wide values (``meta.py``) and the database file's rules
(``database.py``: opening, transactions, migrations). Rows come back as the dataclasses
of ``states.py``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cvsyncd.errors import StoreError
from cvsyncd.jobs.database import DB_NAME, Connection, connect, prepare_state_dir
from cvsyncd.jobs.database import inspect as inspect_database
from cvsyncd.jobs.lock import StateDirLock
from cvsyncd.jobs.meta import META_LAST_JOB
from cvsyncd.jobs.queries import JobQueries, options_key
from cvsyncd.jobs.shared import SharedStore
from cvsyncd.jobs.spending import SpendRecords
from cvsyncd.jobs.states import RETRYABLE, InputFile, Job, JobState, check_transition

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


class Store(JobQueries, SpendRecords):
    """The job store. Open it with ``Store.open``; close it when done."""

    def __init__(
        self, conn: Connection, path: Path | str, lock: StateDirLock | None, site: str = ""
    ):
        super().__init__(conn, path)
        self._lock = lock
        self.site = site

    # -- opening -----------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        state_dir: Path,
        *,
        daemon: bool = False,
        kind: str = "daemon",
        verify: bool = True,
        wakes: bool = False,
        shared: SharedStore | None = None,
        site: str = "",
    ) -> Store:
        """Open (creating and migrating if need be) the store in ``state_dir``, or with
        ``shared`` the PostgreSQL store that several daemons share (``postgres.py``).

        With ``daemon=True`` the state directory is locked for this process, so a second
        daemon on the same directory fails with StoreLocked (``wakes``: this process
        handles the lock's WAKE_SIGNAL, see ``lock.py``). Raise StoreCorrupt when the
        database fails its integrity check (``verify``: a command that only reads skips
        it, as it costs a read of the whole file) and StoreTooNew when a newer cvsyncd
        wrote it.
        """
        prepare_state_dir(state_dir)
        lock = None
        if daemon:
            lock = StateDirLock(state_dir, kind, wakes)
            lock.acquire()
        try:
            if shared is not None:
                return _postgres().connect(shared, lock)
            path = state_dir / DB_NAME
            conn = connect(path)
            store = cls(conn, path, lock, site)
            if verify:
                store._check_integrity()
            store._migrate()
        except BaseException:
            if lock:
                lock.release()
            raise
        return store

    @staticmethod
    def inspect(state_dir: Path, shared: SharedStore | None = None) -> tuple[int, int] | None:
        """(schema version, number of jobs), changing nothing; None if there is no store."""
        if shared is not None:
            return _postgres().inspect_shared(shared)
        return inspect_database(state_dir)

    @classmethod
    def open_existing(
        cls, state_dir: Path, *, verify: bool = True, shared: SharedStore | None = None
    ) -> Store | None:
        """Open the store for a command that only reads or edits jobs; None if none exists."""
        if shared is None and not (state_dir / DB_NAME).exists():
            return None
        return cls.open(state_dir, verify=verify, shared=shared)

    def close(self) -> None:
        self._conn.close()
        if self._lock:
            self._lock.release()

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
            created = conn.execute(
                "INSERT INTO jobs (id, site, folder, name, fingerprint, options, options_key,"
                " state, facts, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING RETURNING *",
                (
                    job_id,
                    self.site,
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
            ).fetchall()
            if not created:
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
        return self._job(created[0], [dataclasses.replace(f, file_url=None) for f in inputs])

    def _next_job_id(self, conn: Connection) -> int:
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
        *,
        inputs: Mapping[int, Mapping[str, Any]] | None = None,
        **fields: Any,
    ) -> Job:
        """Move a job from ``current`` to ``new`` (and set ``fields``) in one transaction.

        ``inputs`` sets fields of input rows in the same transaction (by position; see
        ``set_input``). Raise StoreError if the job is no longer in ``current`` — someone
        else moved it.
        """
        check_transition(current, new)
        return self._update(job_id, current, new, message, fields, inputs)

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
        inputs: Mapping[int, Mapping[str, Any]] | None = None,
    ) -> Job:
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        for changes in (inputs or {}).values():
            _check_input_fields(changes)
        now = time.time()
        values = {
            k: (v if isinstance(v, JsonText) or k not in JSON_COLUMNS else json.dumps(v))
            for k, v in fields.items()
        }
        values["state"] = new.value
        values["updated_at"] = now
        assignments = ", ".join(f"{k} = ?" for k in values)
        with self._write() as conn:
            # the row as it now is comes back with the change: no second read of it
            rows = conn.execute(
                f"UPDATE jobs SET {assignments} WHERE id = ? AND state = ? RETURNING *",
                (*values.values(), job_id, current.value),
            ).fetchall()
            if len(rows) != 1:
                raise StoreError(f"job {job_id} is no longer {current}; not changed")
            for position, changes in (inputs or {}).items():
                _set_input(conn, job_id, position, changes)
            if message or new != current:
                _add_event(conn, job_id, new, message, now)
            return self._job(rows[0])

    def set_input(self, job_id: int, position: int, **fields: Any) -> None:
        """Update one input row: its upload URL, or its size/mtime/fingerprint after a re-read."""
        _check_input_fields(fields)
        with self._write() as conn:
            _set_input(conn, job_id, position, fields)

    def requeue(self, job_id: int, message: str) -> Job:
        """Send a finished job back to the queue, from scratch (``cvsyncd retry``).

        Only failed, needs_attention and duplicate jobs can be requeued; everything learnt
        about the previous attempt (edit id, uploads, result, outputs) is cleared, and the
        previous edit id kept among the facts.
        """
        job = self.get(job_id)
        if job is None:
            raise StoreError(f"there is no job {job_id}")
        if job.state not in RETRYABLE:  # an active job is the pipeline's, not the operator's
            raise StoreError(
                f"job {job_id} is {job.state}; only failed, needs_attention and duplicate "
                "jobs can be queued again"
            )
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
        if job.state is not JobState.FAILED or not job.edit_id:
            raise StoreError(f"job {job_id} is {job.state} without an edit to fetch again")
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

    def delete_job(self, job_id: int) -> bool:
        """Forget a job entirely (its inputs and history too). Return whether it existed."""
        with self._write() as conn:
            return conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount == 1


INPUT_FIELDS = frozenset({"file_url", "size", "mtime_ns", "fingerprint", "ctime_ns", "inode"})


def _check_input_fields(fields: Mapping[str, Any]) -> None:
    if not fields or set(fields) - INPUT_FIELDS:
        raise ValueError(f"input fields must be among {sorted(INPUT_FIELDS)}")


def _set_input(conn: Connection, job_id: int, position: int, fields: Mapping[str, Any]) -> None:
    assignments = ", ".join(f"{k} = ?" for k in fields)
    conn.execute(
        f"UPDATE inputs SET {assignments} WHERE job_id = ? AND position = ?",
        (*fields.values(), job_id, position),
    )


def _add_event(
    conn: Connection, job_id: int, state: JobState, message: str | None, now: float
) -> None:
    conn.execute(
        "INSERT INTO events (job_id, at, state, message) VALUES (?, ?, ?, ?)",
        (job_id, now, state.value, message),
    )


def _postgres() -> Any:
    """The PostgreSQL store class (``postgres.py``): only with cvsyncd[postgres]."""
    try:
        from cvsyncd.jobs.postgres import PgStore
    except ImportError:
        raise StoreError(
            "[store] url names a PostgreSQL database, but its driver is not installed: "
            "pip install 'cvsyncd[postgres]' (or remove [store] to use the SQLite file)"
        ) from None
    return PgStore
