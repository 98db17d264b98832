"""The shared job store on PostgreSQL: several daemons (sites), one state.

``PgStore`` is the SQLite ``Store`` with another connection and dialect: the store's SQL
is written once (``?`` placeholders, rows read by name or position); ``PgConnection``
turns it into psycopg's and gives rows that read the same way, and ``PgStore`` overrides
only what PostgreSQL spells differently (JSON fields, the schema version, the summaries,
transactions). The contract tests (tests/unit/jobs/) run every operation on both.

Concurrency between sites:

- every write is one transaction that first takes a transaction-scoped advisory lock
  (``WRITE_LOCK``), so writes are serialised across daemons as SQLite's ``BEGIN
  IMMEDIATE`` serialises them in one file. The lock ends with the transaction or the
  session: a daemon killed with SIGKILL releases it when the kernel closes its socket; a
  daemon frozen or cut off mid-transaction loses it after ``idle_in_transaction_session_
  timeout`` (``SharedStore.lease_seconds``, 15 s). No other claim is ever held between statements.
- migrations run under a session advisory lock (``MIGRATE_LOCK``): when several daemons
  start at once, one migrates and the others wait, then find the schema current.
- a daemon's own questions (what is due, its folders' state) are asked with
  ``site = ?``; the account's (spend, duplicates by content, the listing, holds, the
  request budget) are asked of every site.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any

import psycopg

from cvsyncd.errors import StoreError, StoreTooNew, StoreUnavailable
from cvsyncd.failpoints import failpoint
from cvsyncd.jobs.lock import StateDirLock
from cvsyncd.jobs.queries import Listing
from cvsyncd.jobs.shared import SharedStore
from cvsyncd.jobs.store import Store

WRITE_LOCK = 0x63767379_00000001  # advisory lock keys ("cvsy"…), one per purpose
MIGRATE_LOCK = 0x63767379_00000002
CONNECT_TIMEOUT = 5
VERSION_TABLE = "cvsyncd_schema"

# The schema, as an ordered list of migrations (``VERSION_TABLE`` says how many ran). It is
# SQLite's schema at its version 5 with PostgreSQL's types and the site in the identity.
# Never edit a released migration; append a new one.
PG_MIGRATIONS: Sequence[Sequence[str]] = (
    (
        """CREATE TABLE jobs (
            id BIGINT PRIMARY KEY,
            site TEXT NOT NULL,
            folder TEXT NOT NULL,
            name TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            options TEXT NOT NULL,
            options_key TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at DOUBLE PRECISION NOT NULL DEFAULT 0,
            edit_id TEXT,
            progress TEXT,
            result TEXT,
            outputs TEXT NOT NULL DEFAULT '[]',
            disposed_to TEXT,
            error TEXT,
            facts TEXT NOT NULL DEFAULT '{}',
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            submitted_at DOUBLE PRECISION,
            finished_at DOUBLE PRECISION
        )""",
        "CREATE UNIQUE INDEX jobs_identity ON jobs (site, folder, name, fingerprint)",
        "CREATE INDEX jobs_due ON jobs (site, state, next_attempt_at)",
        "CREATE INDEX jobs_content ON jobs (fingerprint, options_key)",
        "CREATE INDEX jobs_folder_state ON jobs (site, folder, state)",
        "CREATE INDEX jobs_spent_at ON jobs (((facts::jsonb #>> '{spend,at}')::float8))",
        """CREATE TABLE inputs (
            job_id BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            rel_path TEXT NOT NULL,
            size BIGINT NOT NULL,
            mtime_ns BIGINT NOT NULL,
            fingerprint TEXT NOT NULL,
            file_url TEXT,
            ctime_ns BIGINT,
            inode BIGINT,
            PRIMARY KEY (job_id, position)
        )""",
        "CREATE INDEX inputs_path ON inputs (rel_path)",
        """CREATE TABLE events (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            job_id BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            at DOUBLE PRECISION NOT NULL,
            state TEXT NOT NULL,
            message TEXT
        )""",
        "CREATE INDEX events_job ON events (job_id, id)",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        # the API request budget shared by every site (jobs/requests.py)
        "CREATE TABLE requests (name TEXT NOT NULL, at DOUBLE PRECISION NOT NULL)",
        "CREATE INDEX requests_at ON requests (name, at)",
        # ``take_request`` in one round trip (every API request asks it), serialised per
        # budget rather than with every write
        """CREATE FUNCTION cvsyncd_take_request(budget TEXT, most INTEGER, win FLOAT8)
        RETURNS FLOAT8 LANGUAGE plpgsql AS $body$
        DECLARE
            now FLOAT8 := extract(epoch FROM clock_timestamp());
            closed FLOAT8;
            sent INTEGER;
            oldest FLOAT8;
        BEGIN
            PERFORM pg_advisory_xact_lock(hashtext('cvsyncd requests ' || budget));
            DELETE FROM requests WHERE name = budget AND at <= now - win;
            SELECT value::FLOAT8 INTO closed FROM meta WHERE key = 'requests_closed:' || budget;
            IF closed IS NOT NULL AND closed > now THEN
                RETURN closed - now;
            END IF;
            SELECT COUNT(*), MIN(at) INTO sent, oldest FROM requests WHERE name = budget;
            IF sent >= most THEN
                RETURN GREATEST(oldest + win - now, 0.01);
            END IF;
            INSERT INTO requests (name, at) VALUES (budget, now);
            RETURN 0;
        END
        $body$""",
    ),
)
PG_SCHEMA_VERSION = len(PG_MIGRATIONS)


def _iso(column: str) -> str:
    """A time column as ``iso_time`` writes it (whole seconds, cut)."""
    return (
        f"to_char(to_timestamp(floor({column})) AT TIME ZONE 'UTC',"
        ' \'YYYY-MM-DD"T"HH24:MI:SS"Z"\')'
    )


# ``pipeline.report.job_summary`` in SQL (a test holds them equal), built when listed.
SUMMARY = f"""json_build_object(
    'id', id, 'state', state, 'folder', folder, 'name', name,
    'inputs', COALESCE((SELECT json_agg(rel_path ORDER BY position) FROM inputs
        WHERE job_id = jobs.id), '[]'::json),
    'edit_id', edit_id, 'error', error, 'attempts', attempts, 'progress', progress::json,
    'outputs', COALESCE((SELECT json_agg(o ->> 'path' ORDER BY n)
        FROM json_array_elements(jobs.outputs::json) WITH ORDINALITY AS t(o, n)
        WHERE COALESCE(o ->> 'written', 'false') NOT IN ('false', '0', '', 'null')), '[]'::json),
    'disposed_to', disposed_to, 'duplicate_of', facts::json -> 'duplicate_of',
    'created_at', {_iso("created_at")}, 'updated_at', {_iso("updated_at")},
    'finished_at', {_iso("finished_at")}, 'hold', facts::json -> 'hold', 'site', site)"""


class Row:
    """A row read by name (``row["id"]``) or position (``row[0]``), like sqlite3.Row."""

    __slots__ = ("_names", "_values")

    def __init__(self, names: dict[str, int], values: Sequence[Any]):
        self._names = names
        self._values = values

    def __getitem__(self, key: int | str) -> Any:
        return self._values[self._names[key] if isinstance(key, str) else key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        return list(self._names)


def _rows(cursor: Any) -> Any:
    names = {c.name: i for i, c in enumerate(cursor.description or ())}
    return lambda values: Row(names, values)


@lru_cache(maxsize=512)
def _translate(sql: str) -> str:
    """The store's SQL in psycopg's spelling: ``?`` → ``%s`` (no literal holds a ``?``)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgConnection:
    """The store's connection to PostgreSQL, used as the store uses sqlite3's.

    Statements outside ``transaction()`` run on their own (autocommit). A lost connection
    raises StoreUnavailable, and the next statement connects again. ``round_trips`` counts
    statements sent (the bench reads it).
    """

    def __init__(self, shared: SharedStore):
        self.shared = shared
        self._pg: psycopg.Connection[Any] | None = None
        self.round_trips = 0

    def connection(self) -> psycopg.Connection[Any]:
        if self._pg is not None and not self._pg.broken and not self._pg.closed:
            return self._pg
        self._drop()
        try:
            self._pg = psycopg.connect(
                self.shared.url,
                password=self.shared.password,
                autocommit=True,
                row_factory=_rows,
                connect_timeout=CONNECT_TIMEOUT,
                application_name=f"cvsyncd {self.shared.site}"[:60],
                options="-c idle_in_transaction_session_timeout="
                f"{int(self.shared.lease_seconds * 1000)}",
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
            )
        except psycopg.Error as exc:
            raise self._unavailable(exc) from None
        return self._pg

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if self.shared.password:
            detail = detail.replace(self.shared.password, "***")
        return StoreUnavailable(
            f"the shared store {self.shared.shown_url} does not answer ({detail}); new steps "
            "wait until it answers again. Check that PostgreSQL runs and can be reached"
        )

    def _drop(self) -> None:
        if self._pg is not None:
            with contextlib.suppress(Exception):
                self._pg.close()
            self._pg = None

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Any:
        pg = self.connection()
        self.round_trips += 1
        try:
            return pg.execute(_translate(sql), tuple(parameters))
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            if pg.broken or pg.closed:
                self._drop()
                raise self._unavailable(exc) from None
            raise

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        pg = self.connection()
        self.round_trips += 1
        try:
            with pg.cursor() as cur:
                cur.executemany(_translate(sql), [tuple(r) for r in rows])
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            if pg.broken or pg.closed:
                self._drop()
                raise self._unavailable(exc) from None
            raise

    @contextlib.contextmanager
    def transaction(self) -> Iterator[PgConnection]:
        pg = self.connection()
        try:
            with pg.transaction():
                self.round_trips += 2  # BEGIN and COMMIT
                yield self
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            if pg.broken or pg.closed:
                self._drop()
                raise self._unavailable(exc) from None
            raise

    def close(self) -> None:
        self._drop()


class PgStore(Store):
    """The job store on PostgreSQL, shared by the daemons of several sites."""

    _scoped = True
    _conn: PgConnection

    @classmethod
    def connect(cls, shared: SharedStore, lock: StateDirLock | None = None) -> PgStore:
        """Connect to the shared store, creating or migrating its schema if need be."""
        conn = PgConnection(shared)
        store = cls(conn, shared.shown_url, lock, shared.site)
        try:
            store._migrate()
        except BaseException:
            conn.close()
            raise
        return store

    @classmethod
    def inspect_shared(cls, shared: SharedStore) -> tuple[int, int] | None:
        """(schema version, jobs of all sites) without changing anything; None if the
        database has no cvsyncd schema yet."""
        conn = PgConnection(shared)
        try:
            store = cls(conn, shared.shown_url, None, shared.site)
            version = store.schema_version()
            if version == 0:
                return None
            if version > PG_SCHEMA_VERSION:
                raise store._too_new(version)
            return version, int(conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])
        finally:
            conn.close()

    # -- dialect -------------------------------------------------------------------------

    @staticmethod
    def _json(column: str, *keys: str) -> str:
        return f"({column}::jsonb #>> '{{{','.join(keys)}}}')"

    @staticmethod
    def _json_real(column: str, *keys: str) -> str:
        return f"(({column}::jsonb #>> '{{{','.join(keys)}}}')::float8)"

    @contextlib.contextmanager
    def _write(self) -> Iterator[Any]:
        """One transaction, serialised with every other site's writes (``WRITE_LOCK``)."""
        if self._depth:
            yield self._conn
            return
        with self._conn.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))
            self._depth += 1
            try:
                yield conn
            finally:
                self._depth -= 1

    def _clock(self, conn: Any) -> float:
        """The database server's clock: one clock for the hosts of every site."""
        return float(conn.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()[0])

    def take_request(self, name: str, limit: int, window: float) -> float:
        """As ``RequestBudget.take_request``, in one round trip (``cvsyncd_take_request``)."""
        if self._depth:  # inside a serialized body: the same, within its transaction
            return super().take_request(name, limit, window)
        row = self._conn.execute(
            "SELECT cvsyncd_take_request(?, ?, ?)", (name, int(limit), float(window))
        ).fetchone()
        return float(row[0])

    def _check_integrity(self) -> None:
        """PostgreSQL checks its own pages (and a damaged server does not start)."""

    def schema_version(self) -> int:
        row = self._conn.execute(
            "SELECT to_regclass(?) IS NOT NULL", (f"public.{VERSION_TABLE}",)
        ).fetchone()
        if not row[0]:
            return 0
        row = self._conn.execute(f"SELECT MAX(version) FROM {VERSION_TABLE}").fetchone()
        return int(row[0] or 0)

    def _too_new(self, version: int) -> StoreTooNew:
        return StoreTooNew(
            f"the shared store {self.path} has schema version {version}, but this cvsyncd "
            f"only knows versions up to {PG_SCHEMA_VERSION}: a newer cvsyncd at another "
            "site migrated it. Upgrade this site's cvsyncd; it will not change the database"
        )

    def _migrate(self) -> None:
        """Bring the schema up to date; with several daemons starting at once, one of
        them migrates while the others wait for the lock, then find nothing to do."""
        self._conn.execute("SELECT pg_advisory_lock(?)", (MIGRATE_LOCK,))
        try:
            version = self.schema_version()
            if version > PG_SCHEMA_VERSION:
                raise self._too_new(version)
            for target in range(version + 1, PG_SCHEMA_VERSION + 1):
                with self._write() as conn:
                    conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE}"
                        " (version INTEGER PRIMARY KEY, at DOUBLE PRECISION NOT NULL)"
                    )
                    for statement in PG_MIGRATIONS[target - 1]:
                        conn.execute(statement)
                        failpoint("migrate.statement")
                    conn.execute(
                        f"INSERT INTO {VERSION_TABLE} (version, at) VALUES (?, ?)",
                        (target, time.time()),
                    )
                failpoint("migrate.committed")
        finally:
            with contextlib.suppress(StoreError, psycopg.Error):
                self._conn.execute("SELECT pg_advisory_unlock(?)", (MIGRATE_LOCK,))

    # -- queries PostgreSQL asks its own way ---------------------------------------------

    def summaries_json(self, listing: Listing) -> Iterator[str]:
        """Each listed job's summary (of every site) as JSON text, built by the server."""
        where, args = listing.where()
        yield from (
            str(r[0])
            for r in self._conn.execute(f"SELECT ({SUMMARY})::text FROM jobs{where}", args)
        )

    def meta_items(self, prefix: str) -> dict[str, str]:
        rows = self._conn.execute(
            "SELECT key, value FROM meta WHERE starts_with(key, ?)", (prefix,)
        ).fetchall()
        return {str(r[0])[len(prefix) :]: str(r[1]) for r in rows}

    # -- the shared store's own ----------------------------------------------------------

    def round_trips(self) -> int:
        """Statements sent to the database so far (for the bench)."""
        return self._conn.round_trips
