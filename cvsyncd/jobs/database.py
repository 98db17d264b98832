"""The state database file: where it lives, how it is opened, checked and migrated.

Durability rules (see docs/architecture.md, "State"): WAL journal, ``synchronous=FULL``, a
busy timeout, and every write inside ``BEGIN IMMEDIATE … COMMIT`` (:class:`Database`), so a
crash leaves either the old or the new row. The schema is versioned with
``PRAGMA user_version``; each migration runs in one transaction, and a database written by a
newer cvsyncd is refused, never "repaired".
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cvsyncd import fsinfo
from cvsyncd.errors import StoreCorrupt, StoreError, StoreTooNew
from cvsyncd.failpoints import failpoint
from cvsyncd.jobs.migrations import MIGRATIONS, SCHEMA_VERSION

DB_NAME = "cvsyncd.sqlite3"
BUSY_TIMEOUT_MS = 10_000


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
            raise corrupt(path, "; ".join(str(r[0]) for r in rows[:3]))
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreTooNew(
                f"the state database {path} was written by a newer cvsyncd (schema "
                f"{version}; this one knows up to {SCHEMA_VERSION})"
            )
        jobs = conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] if version else 0
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:  # text in a damaged page
        raise corrupt(path, str(exc)) from None
    finally:
        conn.close()
    return version, int(jobs)


# The connection: a ``sqlite3.Connection``, or for the shared store the PostgreSQL adapter
# of ``postgres.py``, which takes the same ``?`` SQL and returns rows read the same way.
Connection = Any


class Database:
    """An open state database: the connection, and the one way to write to it.

    The SQL of the store is written once for both backends; where SQLite and PostgreSQL
    spell a thing differently (reading a JSON field), a method here gives SQLite's
    spelling and ``postgres.PgStore`` overrides it. ``site`` is recorded on each new job;
    ``_scoped`` (the shared store) limits the daemon's own questions to its site's jobs.
    """

    site = ""
    _scoped = False

    def __init__(self, conn: Connection, path: Path | str):
        self._conn = conn
        self.path = path

    # -- dialect -------------------------------------------------------------------------

    @staticmethod
    def _json(column: str, *keys: str) -> str:
        """SQL for a field of a JSON text column, as SQL text/number (NULL if missing)."""
        return f"json_extract({column}, '$.{'.'.join(keys)}')"

    _json_real = _json  # the same, as a number (SQLite's json_extract already is one)

    def _mine(self, column: str = "site") -> tuple[str, list[Any]]:
        """`` AND site = ?`` for a question about this daemon's own jobs (shared store)."""
        return (f" AND {column} = ?", [self.site]) if self._scoped else ("", [])

    def _site_key(self, key: str) -> str:
        """A meta key that is this daemon's own (its folders' state), not the account's."""
        return f"site:{self.site}:{key}" if self._scoped else key

    _depth = 0  # writes open: a write inside ``serialized()`` joins its transaction

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """Run the body in one ``BEGIN IMMEDIATE`` transaction; roll back on any error."""
        if self._depth:
            yield self._conn
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._depth += 1
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        finally:
            self._depth -= 1
        self._conn.execute("COMMIT")

    @contextlib.contextmanager
    def serialized(self) -> Iterator[None]:
        """Ask and act as one: the reads and writes of the body form one transaction that
        no other writer (another site's daemon, with the shared store) runs beside. For a
        check and the step it allows: the caps before a job spends, the duplicate check
        before a job is created."""
        with self._write():
            yield

    def _check_integrity(self) -> None:
        try:
            rows = self._conn.execute("PRAGMA quick_check").fetchall()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:  # text in a damaged page
            raise corrupt(Path(self.path), str(exc)) from None
        if [r[0] for r in rows] != ["ok"]:
            raise corrupt(Path(self.path), "; ".join(str(r[0]) for r in rows[:3]))

    def ping(self) -> None:
        """Read one row: raise sqlite3.Error if the database does not answer (health)."""
        self._conn.execute("SELECT key FROM meta LIMIT 1").fetchall()

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
                # read again under the write lock: a daemon starting beside a command (or
                # another command) may have made this step since the version was read
                if self.schema_version() >= target:
                    continue
                for statement in MIGRATIONS[target - 1]:
                    self._conn.execute(statement)
                    failpoint("migrate.statement")
                self._conn.execute(f"PRAGMA user_version = {target}")
            failpoint("migrate.committed")


# the oldest SQLite with everything the store's statements use (RETURNING: 3.35)
SQLITE_NEEDED = (3, 35, 0)


def check_sqlite(version: tuple[int, int, int] = sqlite3.sqlite_version_info) -> None:
    """Refuse, saying what to do, a Python whose SQLite library is too old for the store."""
    if version < SQLITE_NEEDED:
        raise StoreError(
            f"cvsyncd needs SQLite {'.'.join(map(str, SQLITE_NEEDED))} or newer, but this "
            f"Python uses SQLite {'.'.join(map(str, version))}. Use a Python built with a "
            "newer SQLite (the python.org builds, Debian 12 or Ubuntu 22.04 and later, or "
            "the container image)"
        )


def connect(path: Path) -> sqlite3.Connection:
    """Open the database file private to its owner, with the durability pragmas set."""
    check_sqlite()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:  # text in a damaged page
        raise corrupt(path, str(exc)) from None
    if str(mode).lower() != "wal":
        conn.close()
        raise StoreError(f"the state database {path} cannot use WAL journaling (got {mode})")
    return conn


def corrupt(path: Path, detail: str) -> StoreCorrupt:
    return StoreCorrupt(
        f"the state database {path} is damaged ({detail}). cvsyncd has not changed it and "
        f"will not start on it. Keep a copy for diagnosis; to start afresh, move it aside "
        f"(mv {path} {path}.damaged) — jobs in progress would then be forgotten and the "
        "inboxes scanned anew"
    )
