"""What the running daemon counts for ``/metrics``: plain numbers, no metrics library.

The client counts its API requests (by endpoint and status) and the bytes its transfers
move; the outcomes count the retries they schedule. The dashboard's collector
(``web/metrics.py``) reads them when scraped. Only the event loop's thread and the
transfer threads add to them; an ``int`` increment under the GIL is all that is done.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field

_EDIT = re.compile(r"/edits/[^/]+")


def endpoint_of(method: str, path: str) -> str:
    """A request's endpoint as a label of few values: ``GET /v2/edits/{id}``, never an id."""
    return f"{method} {_EDIT.sub('/edits/{id}', path)}"


@dataclass
class Counters:
    """Totals since the daemon started."""

    api_requests: Counter[tuple[str, str]] = field(default_factory=Counter)  # (endpoint, status)
    bytes_uploaded: int = 0
    bytes_downloaded: int = 0
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def api_request(self, method: str, path: str, status: int | str) -> None:
        """One API request ended: ``status`` is the HTTP status, or ``"error"`` (no answer)."""
        self.api_requests[(endpoint_of(method, path), str(status))] += 1

    def transferred(self, *, up: int = 0, down: int = 0) -> None:
        with self._lock:  # transfers run in threads
            self.bytes_uploaded += up
            self.bytes_downloaded += down
