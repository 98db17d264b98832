"""What a job is: its states, the transitions allowed between them, and its record.

The state machine is data. ``TRANSITIONS`` is the whole truth; ``check_transition`` is
the one pure function that enforces it, and the store enforces it again in SQL
(``UPDATE … WHERE state = ?``) so that two writers can never both move a job.

::

    queued → uploading → uploaded → submitting → processing → fetching → writing → disposing → done
      ↕                                 │
    held                                └─(no answer / crash)→ needs_attention
    queued ─(the spend guard: a backlog, a cap, too little credit)→ held (nothing uploaded)
    any active state ─(permanent error)→ failed
    queued ─(same recording and preset as a done job)→ duplicate
    held ─(cvsyncd release; a cap that allows it again)→ queued
    failed, needs_attention, duplicate ─(cvsyncd retry)→ queued
    failed with its edit still at Cleanvoice ─(cvsyncd retry)→ processing (not paid again)
"""

from __future__ import annotations

import enum
import functools
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class JobState(enum.StrEnum):
    QUEUED = "queued"
    HELD = "held"
    UPLOADING = "uploading"
    UPLOADED = "uploaded"
    SUBMITTING = "submitting"
    PROCESSING = "processing"
    FETCHING = "fetching"
    WRITING = "writing"
    DISPOSING = "disposing"
    DONE = "done"
    FAILED = "failed"
    NEEDS_ATTENTION = "needs_attention"
    DUPLICATE = "duplicate"


S = JobState

TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    # duplicate: the same recording with the same preset was already processed by another job
    # held: the spend guard keeps it back before a byte is uploaded (pipeline/spend.py)
    S.QUEUED: frozenset({S.UPLOADING, S.HELD, S.FAILED, S.DUPLICATE}),
    # queued: released by the user, or a cap that held it allows it now
    S.HELD: frozenset({S.QUEUED, S.FAILED}),
    # back to queued: the upload was interrupted or the file changed under us
    S.UPLOADING: frozenset({S.UPLOADED, S.QUEUED, S.FAILED}),
    S.UPLOADED: frozenset({S.SUBMITTING, S.QUEUED, S.FAILED}),
    # back to uploaded: the edit was definitely not created (connect refused, 429);
    # failed: the API refused the request itself (4xx), so nothing was created either
    S.SUBMITTING: frozenset({S.PROCESSING, S.UPLOADED, S.NEEDS_ATTENTION, S.FAILED}),
    S.PROCESSING: frozenset({S.FETCHING, S.FAILED}),
    S.FETCHING: frozenset({S.WRITING, S.FAILED}),
    S.WRITING: frozenset({S.DISPOSING, S.FAILED}),
    S.DISPOSING: frozenset({S.DONE}),
    S.DONE: frozenset(),
    # retry: a deliberate decision of the user, from the start; or, for a job whose edit
    # is still at Cleanvoice (it failed here, not there), fetching that edit's results again
    S.FAILED: frozenset({S.QUEUED, S.PROCESSING}),
    S.NEEDS_ATTENTION: frozenset({S.QUEUED, S.FAILED}),
    S.DUPLICATE: frozenset({S.QUEUED}),
}

TERMINAL = frozenset({S.DONE, S.FAILED, S.NEEDS_ATTENTION, S.DUPLICATE})
# final states a user may send back to the queue with `cvsyncd retry`
RETRYABLE = frozenset({S.FAILED, S.NEEDS_ATTENTION, S.DUPLICATE})
ACTIVE = frozenset(TRANSITIONS) - TERMINAL
# active states in which the daemon works on a job (a held one waits for a person or a
# budget: nothing to do for it until then)
WORKING = ACTIVE - {S.HELD}
# states in which Cleanvoice holds (or may hold) an edit for the job
REMOTE = frozenset({S.SUBMITTING, S.PROCESSING, S.FETCHING, S.WRITING})


class TransitionError(ValueError):
    """A state change that the state machine does not allow (a programming error)."""


def check_transition(current: JobState, new: JobState) -> None:
    """Raise TransitionError unless a job may go from ``current`` to ``new``."""
    if new not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing (final)"
        raise TransitionError(f"a job cannot go from {current} to {new}; from {current}: {allowed}")


@dataclass(frozen=True)
class InputFile:
    """One input file of a job, as it was when the job was created (or last re-read).

    ``ctime_ns`` and ``inode`` make the "is it still the same file" check strict: a file
    replaced by another of the same size and mtime (``cp -p``, ``rsync -t``) has a new
    inode or change time. Jobs from before they were recorded have None.
    """

    rel_path: str
    size: int
    mtime_ns: int
    fingerprint: str
    file_url: str | None = None  # where Cleanvoice has it; never a signed URL's query
    ctime_ns: int | None = None
    inode: int | None = None

    @classmethod
    def of(cls, rel_path: str, st: os.stat_result, fingerprint: str = "") -> InputFile:
        """The record of a file as ``st`` (its lstat) describes it."""
        return cls(
            rel_path,
            st.st_size,
            st.st_mtime_ns,
            fingerprint,
            ctime_ns=st.st_ctime_ns,
            inode=st.st_ino,
        )

    def matches(self, st: os.stat_result) -> bool:
        """Whether ``st`` still describes the file recorded here."""
        if (st.st_size, st.st_mtime_ns) != (self.size, self.mtime_ns):
            return False
        if self.ctime_ns is not None and st.st_ctime_ns != self.ctime_ns:
            return False
        return self.inode is None or st.st_ino == self.inode


@dataclass(frozen=True)
class Job:
    id: int
    folder: str
    name: str
    fingerprint: str
    options: Mapping[str, Any]
    state: JobState
    inputs: tuple[InputFile, ...]
    attempts: int = 0
    next_attempt_at: float = 0.0
    edit_id: str | None = None
    progress: Mapping[str, Any] | None = None
    result_text: str | None = field(default=None, repr=False)  # the result as stored (JSON)
    outputs: tuple[Mapping[str, Any], ...] = ()
    disposed_to: str | None = None
    error: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    submitted_at: float | None = None
    finished_at: float | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)
    site: str = ""  # the daemon (its host, or [store] site) whose disks hold the files

    @property
    def is_multitrack(self) -> bool:
        return len(self.inputs) > 1

    @functools.cached_property
    def result(self) -> Mapping[str, Any] | None:
        """The stored result of the edit, parsed when first asked for: it may be megabytes
        (a long transcript), and most readers of a job never need it."""
        return None if self.result_text is None else json.loads(self.result_text)


def iso_time(ts: float | None) -> str | None:
    """A job timestamp as ISO 8601 UTC text (``None`` stays ``None``)."""
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
