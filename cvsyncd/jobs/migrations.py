"""The schema of the state database, as an ordered list of migrations.

``PRAGMA user_version`` says how many of them a database has; ``store.Store`` runs the
missing ones, each in one transaction with its version bump, so that a crash leaves the
old schema or the new one. A database newer than this list is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

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
)
SCHEMA_VERSION = len(MIGRATIONS)
