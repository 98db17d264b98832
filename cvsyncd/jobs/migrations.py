"""The schema of the state database, as an ordered list of migrations.

``PRAGMA user_version`` says how many of them a database has; ``store.Store`` runs the
missing ones, each in one transaction with its version bump, so that a crash leaves the
old schema or the new one. A database newer than this list is refused.
"""

from __future__ import annotations

import re
from collections.abc import Sequence


def _iso(column: str) -> str:
    return f"(replace(datetime({column}, 'unixepoch'), ' ', 'T') || 'Z')"


# A job's summary, as migration 3 keeps it (in the context of a row of ``jobs``): the keys
# and values of ``pipeline.report.job_summary``, which a test holds equal. Frozen with
# migration 3: a change to it is a new migration that recreates the triggers.
SUMMARY_3 = f"""json_object(
    'id', id, 'state', state, 'folder', folder, 'name', name,
    'inputs', (SELECT json_group_array(rel_path) FROM
        (SELECT rel_path FROM inputs WHERE job_id = jobs.id ORDER BY position)),
    'edit_id', edit_id, 'error', error, 'attempts', attempts, 'progress', json(progress),
    'outputs', (SELECT json_group_array(value ->> '$.path') FROM
        (SELECT value FROM json_each(jobs.outputs) WHERE value ->> '$.written' ORDER BY key)),
    'disposed_to', disposed_to, 'duplicate_of', facts ->> '$.duplicate_of',
    'created_at', {_iso("created_at")}, 'updated_at', {_iso("updated_at")},
    'finished_at', {_iso("finished_at")})"""


# Migration 4 adds why a held job waits (``facts.hold``: its kind, reason and figures),
# and writes times as Python does: whole seconds cut, not rounded (SQLite's datetime()
# rounds to the millisecond, so 12:00:44.9997 came out as 12:00:45).
SUMMARY_4 = re.sub(
    r"datetime\((\w+), 'unixepoch'\)",
    r"datetime(CAST(\1 AS INTEGER), 'unixepoch')",
    SUMMARY_3.removesuffix(")") + ",\n    'hold', json(facts -> '$.hold'))",
)

# Migration 5 adds the job's site.
SUMMARY_5 = SUMMARY_4.removesuffix(")") + ", 'site', site)"


def _refresh(job_id: str, summary: str = SUMMARY_3) -> str:
    return (
        "INSERT OR REPLACE INTO summaries (job_id, json)"
        f" SELECT id, {summary} FROM jobs WHERE id = {job_id}"
    )


def _summary_triggers(summary: str) -> list[str]:
    """The triggers that keep ``summaries`` up to date with ``summary``."""
    return [
        f"""CREATE TRIGGER summary_of_a_new_job AFTER INSERT ON jobs BEGIN
            {_refresh("NEW.id", summary)};
        END""",
        f"""CREATE TRIGGER summary_of_a_changed_job AFTER UPDATE ON jobs BEGIN
            {_refresh("NEW.id", summary)};
        END""",
        f"""CREATE TRIGGER summary_of_a_new_input AFTER INSERT ON inputs BEGIN
            {_refresh("NEW.job_id", summary)};
        END""",
        f"""CREATE TRIGGER summary_of_a_moved_input AFTER UPDATE OF rel_path ON inputs BEGIN
            {_refresh("NEW.job_id", summary)};
        END""",
    ]


# Each migration is a list of statements run in one transaction together with the
# ``user_version`` bump. Never edit a released migration; append a new one.
MIGRATIONS: Sequence[Sequence[str]] = (
    (
        """CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            folder TEXT NOT NULL,
            name TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            options TEXT NOT NULL,
            options_key TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL DEFAULT 0,
            edit_id TEXT,
            progress TEXT,
            result TEXT,
            outputs TEXT NOT NULL DEFAULT '[]',
            disposed_to TEXT,
            error TEXT,
            facts TEXT NOT NULL DEFAULT '{}',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            submitted_at REAL,
            finished_at REAL
        )""",
        "CREATE UNIQUE INDEX jobs_identity ON jobs (folder, name, fingerprint)",
        "CREATE INDEX jobs_due ON jobs (state, next_attempt_at)",
        "CREATE INDEX jobs_content ON jobs (fingerprint, options_key)",
        """CREATE TABLE inputs (
            job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            rel_path TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            fingerprint TEXT NOT NULL,
            file_url TEXT,
            PRIMARY KEY (job_id, position)
        )""",
        "CREATE INDEX inputs_path ON inputs (rel_path)",
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            at REAL NOT NULL,
            state TEXT NOT NULL,
            message TEXT
        )""",
        "CREATE INDEX events_job ON events (job_id, id)",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ),
    # 2: an input's change time and inode, so that "still the same file" is strict
    (
        "ALTER TABLE inputs ADD COLUMN ctime_ns INTEGER",
        "ALTER TABLE inputs ADD COLUMN inode INTEGER",
    ),
    # 3: each job's summary as `jobs --json` shows it, kept up to date by triggers, so
    # that listing 100,000 jobs is reading 100,000 short texts (queries.Listing)
    (
        """CREATE TABLE summaries (
            job_id INTEGER PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
            json TEXT NOT NULL
        )""",
        f"""CREATE TRIGGER summary_of_a_new_job AFTER INSERT ON jobs BEGIN
            {_refresh("NEW.id")};
        END""",
        f"""CREATE TRIGGER summary_of_a_changed_job AFTER UPDATE ON jobs BEGIN
            {_refresh("NEW.id")};
        END""",
        f"""CREATE TRIGGER summary_of_a_new_input AFTER INSERT ON inputs BEGIN
            {_refresh("NEW.job_id")};
        END""",
        f"""CREATE TRIGGER summary_of_a_moved_input AFTER UPDATE OF rel_path ON inputs BEGIN
            {_refresh("NEW.job_id")};
        END""",
        f"INSERT INTO summaries (job_id, json) SELECT id, {SUMMARY_3} FROM jobs",
        # `status` counts jobs per folder and state from this index alone
        "CREATE INDEX jobs_folder_state ON jobs (folder, state)",
    ),
    # 4: the spend guard. The state `held` (a summary says why: its `hold`), and the hours
    # each job counted against the caps when it passed the guard (`facts.spend`), found by
    # the time it passed (the caps sum a day's or a month's, jobs.spending)
    (
        "DROP TRIGGER summary_of_a_new_job",
        "DROP TRIGGER summary_of_a_changed_job",
        "DROP TRIGGER summary_of_a_new_input",
        "DROP TRIGGER summary_of_a_moved_input",
        *_summary_triggers(SUMMARY_4),
        f"INSERT OR REPLACE INTO summaries (job_id, json) SELECT id, {SUMMARY_4} FROM jobs",
        "CREATE INDEX jobs_spent_at ON jobs (json_extract(facts, '$.spend.at'))",
    ),
    # 5: the site of each job (the daemon whose disks hold its files: [store] site), which
    # its summary shows; with one SQLite file there is one site, so nothing is filtered by it
    (
        "ALTER TABLE jobs ADD COLUMN site TEXT NOT NULL DEFAULT ''",
        "DROP TRIGGER summary_of_a_new_job",
        "DROP TRIGGER summary_of_a_changed_job",
        "DROP TRIGGER summary_of_a_new_input",
        "DROP TRIGGER summary_of_a_moved_input",
        *_summary_triggers(SUMMARY_5),
        f"INSERT OR REPLACE INTO summaries (job_id, json) SELECT id, {SUMMARY_5} FROM jobs",
        # the API request log of the shared request budget (jobs/requests.py): used by the
        # shared store; here so that both stores keep one contract
        "CREATE TABLE requests (name TEXT NOT NULL, at REAL NOT NULL)",
        "CREATE INDEX requests_at ON requests (name, at)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
