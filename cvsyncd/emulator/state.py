"""Everything the emulated service remembers: uploads, edits, credits, retention.

All of it lives in memory, with the objects on disk under ``data_dir/objects`` (uploads by
id, results by edit id — never under a name a client chose). One lock guards the maps and
the credit balance; each edit has its own lock, so writing one edit's result files does
not stall the rest of the service.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from cvsyncd.emulator.processing import (
    Failure,
    Outcome,
    Success,
    Track,
    media_duration,
    process_edit,
    running_status,
)
from cvsyncd.emulator.vocabulary import EditRequest

UPLOAD_PREFIX = "/storage/uploads/"
RESULT_PREFIX = "/storage/results/"
MINIMUM_CHARGE_SECONDS = 60.0


@dataclass(frozen=True)
class StateSettings:
    """The knobs of the emulated service (see the ``Emulator`` constructor)."""

    processing_seconds: float = 5.0
    processing_ratio: float = 0.0
    success_without_result: int = 0
    credits_hours: float = 100.0
    retention_seconds: float = 7 * 24 * 3600


@dataclass
class Upload:
    upload_id: str
    filename: str
    created_at: float
    size: int | None = None  # None until a PUT has completed
    etag: str | None = None


@dataclass
class Edit:
    edit_id: str
    request: EditRequest
    upload_ids: tuple[str, ...]
    created_at: float
    processing_seconds: float
    charged_seconds: float
    forced_failure: bool
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    outcome: Outcome | None = None
    polls_after_completion: int = 0
    held_back: int | None = None  # polls answered SUCCESS without a result (once complete)

    @property
    def completes_at(self) -> float:
        return self.created_at + self.processing_seconds


class InsufficientCredits(Exception):
    """The account cannot pay for an edit of ``needed_seconds``."""

    def __init__(self, needed_seconds: float, remaining_seconds: float):
        super().__init__(f"needs {needed_seconds:.0f} s, {remaining_seconds:.0f} s left")
        self.needed_seconds = needed_seconds
        self.remaining_seconds = remaining_seconds


@dataclass(frozen=True)
class Poll:
    """What ``GET /v2/edits/{id}`` answers: a status and a result (maybe unfinished)."""

    status: str
    result: Success | dict[str, Any] | None


def parse_upload_path(path: str) -> tuple[str, str] | None:
    """Given a quoted storage path, return (upload id, filename), or None if not an upload."""
    if not path.startswith(UPLOAD_PREFIX):
        return None
    upload_id, slash, quoted_name = path[len(UPLOAD_PREFIX) :].partition("/")
    if not slash or not quoted_name or not upload_id:
        return None
    return upload_id, unquote(quoted_name)


class State:
    """The emulated service's memory. Every public method is thread-safe."""

    def __init__(
        self, data_dir: Path, settings: StateSettings, clock: Callable[[], float] = time.time
    ):
        self._objects = data_dir / "objects"
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._uploads: dict[str, Upload] = {}
        self._edits: dict[str, Edit] = {}
        self._deleted: set[str] = set()
        self._used_seconds = 0.0
        self._credit_seconds = settings.credits_hours * 3600  # grows with add_credits

    # -- uploads -------------------------------------------------------------------------

    def new_upload(self, filename: str) -> Upload:
        upload = Upload(uuid.uuid4().hex, filename, self._clock())
        with self._lock:
            self._uploads[upload.upload_id] = upload
        return upload

    def _object_path(self, upload_id: str) -> Path:
        return self._objects / "uploads" / upload_id / "object"

    def partial_upload_path(self, upload_id: str) -> Path:
        """Return a fresh temporary path to stream one PUT into (PUTs may overlap)."""
        folder = self._objects / "uploads" / upload_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"object.{uuid.uuid4().hex}.part"

    def commit_upload(
        self, upload_id: str, filename: str, partial: Path, size: int, etag: str
    ) -> None:
        """Make a completely received PUT the object (replacing any earlier one)."""
        with self._lock:
            partial.replace(self._object_path(upload_id))
            upload = self._uploads.get(upload_id)
            if upload is None:  # a valid URL whose object was deleted: S3 just stores it again
                upload = self._uploads[upload_id] = Upload(upload_id, filename, self._clock())
            upload.size, upload.etag = size, etag

    def uploaded_name(self, url: str) -> str | None:
        """The file name of the complete upload ``url`` names, or None if it names none."""
        track = self._track(url)
        return track.name if track.path is not None else None

    def _track(self, url: str) -> Track:
        parsed = parse_upload_path(urlsplit(url).path)
        if parsed is None:
            return Track(url, urlsplit(url).path.rsplit("/", 1)[-1], None)
        upload_id, name = parsed
        with self._lock:
            upload = self._uploads.get(upload_id)
        if upload is None or upload.filename != name or upload.size is None:
            return Track(url, name, None)
        return Track(url, name, self._object_path(upload_id))

    # -- edits ---------------------------------------------------------------------------

    def _processing_seconds(self, duration: float) -> float:
        return max(self._settings.processing_seconds, self._settings.processing_ratio * duration)

    def remaining_seconds(self) -> float:
        with self._lock:
            return self._credit_seconds - self._used_seconds

    def add_credits(self, hours: float) -> None:
        """Top the account up by ``hours`` of audio (a purchase in the dashboard)."""
        with self._lock:
            self._credit_seconds += hours * 3600

    def create_edit(self, request: EditRequest, *, forced_failure: bool) -> Edit:
        """Register an edit and charge for it. Raise InsufficientCredits."""
        duration = max(media_duration(self._track(url).path) for url in request.files)
        cost = max(MINIMUM_CHARGE_SECONDS, duration)
        upload_ids = tuple(
            parsed[0] for url in request.files if (parsed := parse_upload_path(urlsplit(url).path))
        )
        edit = Edit(
            edit_id=str(uuid.uuid4()),
            request=request,
            upload_ids=upload_ids,
            created_at=self._clock(),
            processing_seconds=self._processing_seconds(duration),
            charged_seconds=cost,
            forced_failure=forced_failure,
        )
        with self._lock:
            remaining = self._credit_seconds - self._used_seconds
            if cost > remaining:
                raise InsufficientCredits(cost, remaining)
            self._used_seconds += cost
            self._edits[edit.edit_id] = edit
        return edit

    def _live_edit(self, edit_id: str) -> Edit | None:
        with self._lock:
            return self._edits.get(edit_id)

    def _finish(self, edit: Edit) -> Outcome:
        """Compute the outcome once (the caller holds ``edit.lock``); refund a failure."""
        if edit.outcome is None:
            tracks = [self._track(url) for url in edit.request.files]
            folder = self._objects / "results" / edit.edit_id
            edit.outcome = process_edit(
                tracks, edit.request.config, folder, forced_failure=edit.forced_failure
            )
            if isinstance(edit.outcome, Failure):
                with self._lock:
                    self._used_seconds -= edit.charged_seconds
        return edit.outcome

    def poll_edit(self, edit_id: str, held_back: Callable[[], int] = lambda: 0) -> Poll | None:
        """Return what a poll of the edit shows now, or None for an unknown or deleted id.

        After completion, the first polls answer SUCCESS without a result: as many as the
        settings say, or as ``held_back()`` picks for this edit (asked once), if more.
        """
        edit = self._live_edit(edit_id)
        if edit is None:
            return None
        now = self._clock()
        if now < edit.completes_at:
            status, progress = running_status((now - edit.created_at) / edit.processing_seconds)
            return Poll(status, progress)
        with edit.lock:
            if self._live_edit(edit_id) is None:  # deleted while we waited for the lock
                return None
            outcome = self._finish(edit)
            if isinstance(outcome, Failure):
                return Poll("FAILURE", {"message": outcome.message})
            polls = edit.polls_after_completion
            edit.polls_after_completion += 1
            if edit.held_back is None:
                edit.held_back = max(self._settings.success_without_result, held_back())
        if polls < edit.held_back:
            return Poll("SUCCESS", None if polls % 2 == 0 else {})
        return Poll("SUCCESS", outcome)

    def delete_edit(self, edit_id: str) -> bool:
        """Remove an edit with its uploaded and result files; return False if unknown."""
        edit = self._live_edit(edit_id)
        if edit is None:
            return False
        with edit.lock:
            with self._lock:
                self._edits.pop(edit_id, None)
                self._deleted.add(edit_id)
                for upload_id in edit.upload_ids:
                    self._uploads.pop(upload_id, None)
            for upload_id in edit.upload_ids:
                shutil.rmtree(self._objects / "uploads" / upload_id, ignore_errors=True)
            shutil.rmtree(self._objects / "results" / edit_id, ignore_errors=True)
        return True

    def result_file(self, edit_id: str, name: str) -> Path | None:
        """Return the path of one of a live edit's result files, or None."""
        edit = self._live_edit(edit_id)
        outcome = edit.outcome if edit is not None else None
        if not isinstance(outcome, Success):
            return None
        stored = outcome.file_for(name)  # a URL may name the file without its extension
        if stored is None:
            return None
        path = self._objects / "results" / edit_id / stored
        return path if path.exists() else None

    # -- retention and inspection ----------------------------------------------------------

    def expire(self) -> None:
        """Delete edits (and their files) and stray uploads older than the retention time."""
        cutoff = self._clock() - self._settings.retention_seconds
        with self._lock:
            old_edits = [e.edit_id for e in self._edits.values() if e.completes_at < cutoff]
            in_use = {u for e in self._edits.values() for u in e.upload_ids}
            old_uploads = [
                u.upload_id
                for u in self._uploads.values()
                if u.created_at < cutoff and u.upload_id not in in_use
            ]
            for upload_id in old_uploads:
                self._uploads.pop(upload_id)
        for edit_id in old_edits:
            self.delete_edit(edit_id)
        for upload_id in old_uploads:
            shutil.rmtree(self._objects / "uploads" / upload_id, ignore_errors=True)

    def snapshot(self) -> dict[str, Any]:
        """Return a JSON-ready view of all edits and uploads, for the admin endpoint."""
        now = self._clock()
        with self._lock:
            edits = [self._describe(edit, now) for edit in self._edits.values()]
            deleted = sorted(self._deleted)
            uploads = [
                {"id": u.upload_id, "filename": u.filename, "size": u.size}
                for u in self._uploads.values()
            ]
            remaining = self._credit_seconds - self._used_seconds
        return {
            "edits": edits,
            "deleted_edits": deleted,
            "uploads": uploads,
            "credits_remaining_hours": round(remaining / 3600, 6),
        }

    @staticmethod
    def _describe(edit: Edit, now: float) -> dict[str, Any]:
        outcome = edit.outcome
        if now < edit.completes_at:
            status = running_status((now - edit.created_at) / edit.processing_seconds)[0]
        elif outcome is None:
            status = "DONE_NOT_POLLED"
        else:
            status = "FAILURE" if isinstance(outcome, Failure) else "SUCCESS"
        return {
            "id": edit.edit_id,
            "status": status,
            "files": [url.split("?", 1)[0] for url in edit.request.files],
            "config": dict(edit.request.config),
            "created_at": edit.created_at,
            "completes_at": edit.completes_at,
            "charged_seconds": edit.charged_seconds,
            "message": outcome.message if isinstance(outcome, Failure) else None,
        }
