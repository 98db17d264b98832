"""What is said when a job ends: the event, and a report of each notification.

Both hooks (``hooks.py``) and webhooks (``webhook.py``) receive the same :class:`Event`,
and each returns a :class:`Report` saying what happened; neither raises for a failure of
the other side.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

EVENT_KINDS = ("job.done", "job.failed", "job.needs_attention")


@dataclass(frozen=True)
class Event:
    """What happened to a job, as hooks and webhooks receive it."""

    kind: str  # "job.done" | "job.failed" | "job.needs_attention"
    job_id: int
    state: str
    folder: str  # the inbox path
    input: str  # the input's relative path
    outputs: tuple[str, ...]  # absolute output paths
    error: str | None
    at: float  # unix time

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document["outputs"] = list(self.outputs)
        document["time"] = datetime.fromtimestamp(self.at, UTC).isoformat(timespec="seconds")
        return {"version": 1, **document}

    def to_json(self) -> bytes:
        """The JSON document sent to webhooks and given to hooks on stdin (UTF-8)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Report:
    """The outcome of one notification."""

    target: str  # "command" or "webhook"
    ok: bool
    attempts: int
    detail: str  # exit code / HTTP status / error; no secrets, the URL without its query
