"""Reading jobs: the store's queries, each answering one question the pipeline asks."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from cvsyncd.jobs.database import Database
from cvsyncd.jobs.states import ACTIVE, WORKING, InputFile, Job, JobState

# every column of jobs, the result left out (as NULL)
WITHOUT_RESULT = (
    "id, site, folder, name, fingerprint, options, options_key, state, attempts, next_attempt_at,"
    " edit_id, progress, NULL AS result, outputs, disposed_to, error, facts, created_at,"
    " updated_at, submitted_at, finished_at"
)


def options_key(options: Mapping[str, Any]) -> str:
    """Return a canonical text of an edit config, equal for equal configs."""
    return json.dumps(options, sort_keys=True, separators=(",", ":"))


class Due(NamedTuple):
    """A job whose step is due: when it fell due, which job, which folder."""

    at: float
    id: int
    folder: str


@dataclass(frozen=True)
class Listing:
    """Which jobs a listing shows: newest first, filtered, one page at a time."""

    states: Sequence[JobState] = ()
    folders: Sequence[str] = ()  # folder keys
    before: int | None = None  # only ids below this one (the next page)
    limit: int | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses, args = [], list[Any]()
        if self.states:
            clauses.append(f"jobs.state IN ({in_marks(self.states)})")
            args += [s.value for s in self.states]
        if self.folders:
            clauses.append(f"jobs.folder IN ({in_marks(self.folders)})")
            args += list(self.folders)
        if self.before is not None:
            clauses.append("jobs.id < ?")
            args.append(self.before)
        sql = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        sql += " ORDER BY jobs.id DESC"
        if self.limit is not None:
            sql += " LIMIT ?"
            args.append(self.limit)
        return sql, args


class JobQueries(Database):
    """The read side of the job store."""

    def summaries_json(self, listing: Listing) -> Iterator[str]:
        """Each listed job's summary as JSON text (kept by the database's triggers, see
        migration 3), read row by row: memory stays flat however many jobs there are."""
        where, args = listing.where()
        sql = f"SELECT summaries.json FROM jobs JOIN summaries ON job_id = jobs.id{where}"
        for (text,) in self._conn.execute(sql, args):
            yield text

    def lines(self, listing: Listing) -> Iterator[tuple[int, str, str, str | None, str | None]]:
        """(id, state, name, edit id, error) of each listed job, read row by row."""
        where, args = listing.where()
        yield from self._conn.execute(
            f"SELECT jobs.id, state, name, edit_id, error FROM jobs{where}", args
        )

    def get(self, job_id: int) -> Job | None:
        row = self._conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self._job(row) if row else None

    def jobs(
        self, states: Iterable[JobState] | None = None, limit: int | None = None, mine: bool = False
    ) -> list[Job]:
        """Return jobs, newest first, optionally only those in ``states``; without their
        results (``get`` reads a job whole: a result may be megabytes). ``mine``: only
        this site's (the shared store; every job is the site's with SQLite)."""
        sql, args = f"SELECT {WITHOUT_RESULT} FROM jobs WHERE 1 = 1", list[Any]()
        if states is not None:
            wanted = [s.value for s in states]
            sql += f" AND state IN ({in_marks(wanted)})"
            args.extend(wanted)
        if mine:
            where, more = self._mine()
            sql += where
            args += more
        sql += " ORDER BY id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [self._job(r) for r in self._conn.execute(sql, args).fetchall()]

    def due(
        self,
        state: JobState,
        now: float,
        limit: int,
        after: tuple[float, int] | None = None,
        duplicates: bool | None = None,
    ) -> list[Due]:
        """The next ``limit`` jobs in ``state`` whose next attempt is due, oldest first (and
        after the ``after`` of a previous page): only their ids, read from the index, so a
        scheduler pass costs what it can start, not the size of the backlog. ``duplicates``
        picks queued jobs that are (True) or are not (False) known duplicates."""
        sql = (
            "SELECT next_attempt_at, id, folder FROM jobs WHERE state = ? AND next_attempt_at <= ?"
        )
        args: list[Any] = [state.value, now]
        if after is not None:
            sql += " AND (next_attempt_at, id) > (?, ?)"
            args += list(after)
        if duplicates is not None:
            is_null = "IS NOT NULL" if duplicates else "IS NULL"
            sql += f" AND {self._json('facts', 'duplicate_of')} {is_null}"
        mine, more = self._mine()
        sql += mine
        args += more
        sql += " ORDER BY next_attempt_at, id LIMIT ?"
        args.append(limit)
        return [Due(at, job_id, folder) for at, job_id, folder in self._conn.execute(sql, args)]

    def due_jobs(self, now: float, exclude: Iterable[int] = ()) -> list[Job]:
        """Every active job whose next attempt is due, oldest first (for tests and tools;
        the scheduler pages through ``due``)."""
        skip = set(exclude)
        active = [s.value for s in ACTIVE]
        mine, more = self._mine()
        rows = self._conn.execute(
            f"SELECT {WITHOUT_RESULT} FROM jobs WHERE state IN ({in_marks(active)})"
            f" AND next_attempt_at <= ?{mine} ORDER BY next_attempt_at, id",
            (*active, now, *more),
        ).fetchall()
        return [self._job(r) for r in rows if r["id"] not in skip]

    def next_due_at(self, after: float = 0.0) -> float | None:
        """Return the earliest next-attempt time after ``after`` among active jobs, or None."""
        active = [s.value for s in ACTIVE]
        mine, more = self._mine()
        row = self._conn.execute(
            f"SELECT MIN(next_attempt_at) FROM jobs WHERE state IN ({in_marks(active)})"
            f" AND next_attempt_at > ?{mine}",
            (*active, after, *more),
        ).fetchone()
        return None if row[0] is None else float(row[0])

    def count_by_state(
        self, states: Iterable[JobState] | None = None, mine: bool = False
    ) -> dict[JobState, int]:
        """Jobs per state; with ``states``, only those (cheap: read from the index);
        ``mine``: of this site only (the shared store)."""
        where, args = self._mine() if mine else ("", [])
        if states is None:
            rows = self._conn.execute(
                f"SELECT state, COUNT(*) FROM jobs WHERE 1 = 1{where} GROUP BY state", args
            )
        else:
            wanted = [s.value for s in states]
            rows = self._conn.execute(
                f"SELECT state, COUNT(*) FROM jobs WHERE state IN ({in_marks(wanted)}){where}"
                " GROUP BY state",
                [*wanted, *args],
            )
        return {JobState(r[0]): int(r[1]) for r in rows.fetchall()}

    def count_by_folder(self) -> dict[str, dict[JobState, int]]:
        """Jobs per folder (its key) and state (this site's folders)."""
        mine, more = self._mine()
        rows = self._conn.execute(
            f"SELECT folder, state, COUNT(*) FROM jobs WHERE 1 = 1{mine} GROUP BY folder, state",
            more,
        ).fetchall()
        out: dict[str, dict[JobState, int]] = {}
        for folder, state, count in rows:
            out.setdefault(str(folder), {})[JobState(state)] = int(count)
        return out

    def count_retrying(self) -> int:
        """Active jobs that failed a step at least once and wait for another try."""
        active = [s.value for s in ACTIVE]
        mine, more = self._mine()
        row = self._conn.execute(
            f"SELECT COUNT(*) FROM jobs WHERE state IN ({in_marks(active)}) AND attempts > 0{mine}",
            [*active, *more],
        ).fetchone()
        return int(row[0])

    def oldest_working_since(self) -> float | None:
        """When the oldest job the daemon works on was created (None: there is none). A
        held job waits for a person or a budget, maybe for months: it does not count."""
        working = [s.value for s in WORKING]
        mine, more = self._mine()
        row = self._conn.execute(
            f"SELECT MIN(created_at) FROM jobs WHERE state IN ({in_marks(working)}){mine}",
            [*working, *more],
        ).fetchone()
        return None if row[0] is None else float(row[0])

    def find_by_input(self, folder: str, rel_path: str, size: int, mtime_ns: int) -> Job | None:
        """Return the newest job that took exactly this file (same path, size and mtime)."""
        mine, more = self._mine("jobs.site")
        row = self._conn.execute(
            "SELECT jobs.* FROM inputs JOIN jobs ON jobs.id = inputs.job_id"
            " WHERE jobs.folder = ? AND inputs.rel_path = ? AND inputs.size = ?"
            f" AND inputs.mtime_ns = ?{mine} ORDER BY jobs.id DESC LIMIT 1",
            (folder, rel_path, size, mtime_ns, *more),
        ).fetchone()
        return self._job(row) if row else None

    def taken_before(self, folder: str, rel_paths: Sequence[str]) -> bool:
        """Whether any job of ``folder`` took a file under one of ``rel_paths`` (any content)."""
        if not rel_paths:
            return False
        mine, more = self._mine("jobs.site")
        row = self._conn.execute(
            "SELECT 1 FROM inputs JOIN jobs ON jobs.id = inputs.job_id WHERE jobs.folder = ?"
            f" AND inputs.rel_path IN ({in_marks(rel_paths)}){mine} LIMIT 1",
            (folder, *rel_paths, *more),
        ).fetchone()
        return row is not None

    def find_by_identity(self, folder: str, name: str, fingerprint: str) -> Job | None:
        mine, more = self._mine()
        row = self._conn.execute(
            f"SELECT * FROM jobs WHERE folder = ? AND name = ? AND fingerprint = ?{mine}",
            (folder, name, fingerprint, *more),
        ).fetchone()
        return self._job(row) if row else None

    def find_pending_for_name(self, folder: str, name: str) -> Job | None:
        """Return a job for this name that has not been submitted yet, if any."""
        mine, more = self._mine()
        row = self._conn.execute(
            "SELECT * FROM jobs WHERE folder = ? AND name = ? AND state IN (?, ?, ?, ?)"
            f"{mine} ORDER BY id DESC LIMIT 1",
            (
                folder,
                name,
                JobState.QUEUED.value,
                JobState.HELD.value,
                JobState.UPLOADING.value,
                JobState.UPLOADED.value,
                *more,
            ),
        ).fetchone()
        return self._job(row) if row else None

    def find_same_content(
        self, fingerprint: str, options: Mapping[str, Any], exclude: int | None = None
    ) -> Job | None:
        """Return the oldest other job with the same content and effective options.

        Failed jobs and duplicates do not count: they hold no results to point to. With the
        shared store, this asks every site: the same recording is paid once per account.
        """
        row = self._conn.execute(
            "SELECT * FROM jobs WHERE fingerprint = ? AND options_key = ? AND id <> ?"
            " AND state NOT IN (?, ?) ORDER BY id LIMIT 1",
            (
                fingerprint,
                options_key(options),
                -1 if exclude is None else exclude,
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

    def newer_job_for_name(self, folder: str, name: str, job_id: int) -> Job | None:
        """The newest job after ``job_id`` that took a file under the same name, if any."""
        mine, more = self._mine()
        row = self._conn.execute(
            f"SELECT * FROM jobs WHERE folder = ? AND name = ? AND id > ?{mine}"
            " ORDER BY id DESC LIMIT 1",
            (folder, name, job_id, *more),
        ).fetchone()
        return self._job(row) if row else None

    def _job(self, row: Any, inputs: Sequence[InputFile] | None = None) -> Job:
        """The job of a ``jobs`` row; its inputs are read unless given (a new job's)."""
        if inputs is None:
            inputs = [
                InputFile(*i)
                for i in self._conn.execute(
                    "SELECT rel_path, size, mtime_ns, fingerprint, file_url, ctime_ns, inode"
                    " FROM inputs WHERE job_id = ? ORDER BY position",
                    (row["id"],),
                )
            ]
        return Job(
            id=row["id"],
            site=row["site"],
            folder=row["folder"],
            name=row["name"],
            fingerprint=row["fingerprint"],
            options=json.loads(row["options"]),
            state=JobState(row["state"]),
            inputs=tuple(inputs),
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


def in_marks(values: Sequence[object]) -> str:
    """The ``?, ?, ?`` placeholders for an ``IN (…)`` list of ``values``; for none,
    ``NULL`` (``IN (NULL)`` matches nothing: PostgreSQL refuses an empty ``IN ()``)."""
    return ", ".join("?" * len(values)) or "NULL"


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)
