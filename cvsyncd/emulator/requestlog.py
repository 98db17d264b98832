"""The request log: one JSON line per request, so tests can count what a client really did.

Tests assert facts such as "exactly one create-edit was sent" from this file, so every
request is appended and flushed as soon as it completes. It never holds the API key or a
query string (a presigned URL's query is a credential).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, TextIO


class RequestLog:
    """Appends records to ``path`` (JSON Lines), thread-safely, while it is open."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._file: TextIO | None = None

    def open(self) -> None:
        with self._lock:
            if self._file is None:
                self._file = self.path.open("a", encoding="utf-8")

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            if self._file is not None:
                self._file.write(line)
                self._file.flush()

    def read(self) -> list[dict[str, Any]]:
        """Return every record written so far, oldest first."""
        with self._lock:
            if not self.path.exists():
                return []
            text = self.path.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]
