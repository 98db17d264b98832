"""Daemon-wide state kept beside the jobs, in the ``meta`` table, through typed methods.

No caller outside this package names a key: the account pause, the operator's holds, the
``forget`` generation, the folders the daemon cannot use and the inbox entries it refuses
each have a getter and a setter here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence

from cvsyncd.jobs.database import Database

META_ACCOUNT_PAUSE = "paused"
META_HOLD = "hold:"  # + a folder key, or ALL_FOLDERS
META_FORGET = "forget_generation"
META_UNAVAILABLE = "folders_unavailable"
META_REFUSED = "inbox_refused"
META_LAST_JOB = "last_job_id"  # written with each new job (store.py)
ALL_FOLDERS = "*"


class DaemonState(Database):
    """The meta table's values, each by its own method."""

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
        text = self.get_meta(self._site_key(META_UNAVAILABLE))
        return dict(json.loads(text)) if text else {}

    def set_unavailable_folders(self, folders: Mapping[str, str]) -> None:
        self.set_meta(
            self._site_key(META_UNAVAILABLE),
            json.dumps(dict(folders), sort_keys=True) if folders else None,
        )

    def refused_entries(self) -> list[dict[str, str]]:
        """Inbox entries the running daemon does not take, with why (for ``status``)."""
        text = self.get_meta(self._site_key(META_REFUSED))
        return list(json.loads(text)) if text else []

    def set_refused_entries(self, entries: Sequence[Mapping[str, str]]) -> None:
        self.set_meta(
            self._site_key(META_REFUSED),
            json.dumps([dict(e) for e in entries]) if entries else None,
        )

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
