"""Where a job's recording is, and moving, setting aside or deleting exactly that content.

A job only ever moves, deletes or renames the content it took (docs/reliability.md, promise
16): the user may have dropped a corrected take under the same name meanwhile, or the
path may have become a link. So every such action checks, through ``inputs.still_taken``
(no link followed), that each file is still the one taken, acts, and then checks the
result: a file that turns out not to be ours after a move is moved back, one about to be
deleted is first renamed aside and checked there. :class:`NotOurs` says that the content
at the path is someone else's; nothing was changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO

import structlog

from cvsyncd import events as ev
from cvsyncd.config import Folder
from cvsyncd.errors import JobError, TransientApiError
from cvsyncd.failpoints import failpoint
from cvsyncd.inbox import inputs
from cvsyncd.inbox import rules as inbox
from cvsyncd.jobs import InputFile, Job, JobState
from cvsyncd.outbox.files import (
    fit_name,
    free_name,
    fsync_dir,
    move_file,
    move_tree,
    write_bytes_atomic,
)
from cvsyncd.pipeline.runtime import Runtime, RuntimePart

S = JobState
READY_MARKER = ".ready"
REMOTE_DELETE_TRIES = 5


class NotOurs(Exception):
    """The file (or a track of the session) at the job's path is not the content it took."""


def input_root(folder: Folder, job: Job) -> Path:
    """Where a job's recording is now: the file, or the folder of a multi-track session —
    in the inbox, or in ``failed_dir`` after a failure (or anywhere, for ``process``)."""
    moved = job.facts.get("input_at")
    return Path(moved) if moved else folder.inbox / job.name


def input_place(folder: Folder, job: Job, position: int = 0) -> tuple[Path, str]:
    """The folder an input is read from (trusted: the inbox, ``failed_dir``, or the folder
    of a file given to ``cvsyncd process``) and the input's path below it."""
    moved = job.facts.get("input_at")
    if moved:
        where = Path(moved)
        base = folder.failed_dir if where.is_relative_to(folder.failed_dir) else where.parent
        rel = where.relative_to(base).as_posix()
    else:
        base, rel = folder.inbox, job.name
    if job.facts.get("session"):
        rel = f"{rel}/{PurePosixPath(job.inputs[position].rel_path).name}"
    return base, rel


def current_input_path(folder: Folder, job: Job, position: int = 0) -> Path:
    """Where input ``position`` of a job is now."""
    base, rel = input_place(folder, job, position)
    return base / rel


def ours(folder: Folder, job: Job) -> bool:
    """Whether every file of the job's recording is, right now, the content it took."""
    return all(
        inputs.still_taken(*input_place(folder, job, i), taken)
        for i, taken in enumerate(job.inputs)
    )


def present(folder: Folder, job: Job) -> bool:
    """Whether anything at all is at the job's path (ours or not)."""
    return os.path.lexists(input_root(folder, job))


def _placed(target: Path, job: Job) -> list[tuple[Path, str, InputFile]]:
    """Where each input is after a move to ``target``: (folder, name, what was taken)."""
    if job.facts.get("session"):
        return [(target, PurePosixPath(i.rel_path).name, i) for i in job.inputs]
    return [(target.parent, target.name, job.inputs[0])]


def move_taken(folder: Folder, job: Job, target: Path) -> Path:
    """Move the job's recording to ``target`` (never over an existing file).

    Raise NotOurs, changing nothing, if a file is not the content the job took — checked
    before the move, and after it: a file swapped in at the last instant is moved back.
    A move that a crash cut short between its link and its unlink is finished.
    """
    source = input_root(folder, job)
    if not job.facts.get("session") and _linked_already(source, target, job.inputs[0]):
        os.unlink(source)
        fsync_dir(source.parent)
        return target
    if not ours(folder, job):
        raise NotOurs(f"{source} is not the recording job {job.id} took")
    session = bool(job.facts.get("session"))
    mover = move_tree if session else move_file
    target.parent.mkdir(parents=True, exist_ok=True)
    copied = os.stat(source.parent).st_dev != os.stat(target.parent).st_dev
    mover(source, target)
    if all(_arrived(base, name, taken, copied) for base, name, taken in _placed(target, job)):
        return target
    mover(target, free_name(source))  # not ours after all: put it back
    raise NotOurs(f"{source} was replaced while it was being moved")


def _linked_already(source: Path, target: Path, taken: InputFile) -> bool:
    """Whether ``target`` is already a hard link to ``source``, the file taken: a move
    (link, then unlink) was cut short between the two."""
    try:
        a, b = os.lstat(source), os.lstat(target)
    except OSError:
        return False
    same = (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino) and stat.S_ISREG(a.st_mode)
    return same and _arrived(target.parent, target.name, taken)


def _arrived(base: Path, name: str, taken: InputFile, copied: bool = False) -> bool:
    """Whether the file moved to ``base/name`` is the one taken: the same inode, size and
    mtime after a link or rename (both change the change time, so that is not compared);
    after a copy to another filesystem (a new inode), the same size and mtime."""
    try:
        with inputs.open_regular(base, name) as (_, st):
            same = (st.st_size, st.st_mtime_ns) == (taken.size, taken.mtime_ns)
            return same and (copied or taken.inode is None or st.st_ino == taken.inode)
    except inputs.InputRefused:
        return False


def delete_taken(folder: Folder, job: Job) -> None:
    """Delete the job's recording, file by file, only where it is the content taken.

    Each file is first renamed to a hidden name beside it and checked there, so a file
    swapped in at the last instant is renamed back, not deleted. Raise NotOurs (after
    deleting what was ours) if any file was not the job's.
    """
    strangers = []
    for position, taken in enumerate(job.inputs):
        base, rel = input_place(folder, job, position)
        path = base / rel
        if not inputs.still_taken(base, rel, taken):
            if os.path.lexists(path):
                strangers.append(str(path))
            continue
        aside = path.with_name(f".cvsyncd-delete-{secrets.token_hex(6)}")
        os.rename(path, aside)
        if _arrived(aside.parent, aside.name, taken):
            os.unlink(aside)
        else:
            os.rename(aside, free_name(path))
            strangers.append(str(path))
        fsync_dir(path.parent)
    if job.facts.get("session"):
        root = input_root(folder, job)
        with contextlib.suppress(FileNotFoundError):
            (root / READY_MARKER).unlink()
        with contextlib.suppress(OSError):
            root.rmdir()
    if strangers:
        raise NotOurs(f"not the recording job {job.id} took, left in place: {', '.join(strangers)}")


@contextlib.contextmanager
def open_input(folder: Folder, job: Job, position: int = 0) -> Iterator[IO[bytes]]:
    """The job's input at ``position``, open and proven to be the file it took (see
    ``inputs.open_taken``); gone or changed, it is the job's error."""
    root, rel = input_place(folder, job, position)
    changed = f"{rel} changed since it was taken; its new content will be taken"
    with (
        input_errors(folder, root, rel, changed),
        inputs.open_taken(root, rel, job.inputs[position]) as source,
    ):
        yield source


@contextlib.contextmanager
def input_errors(folder: Folder, root: Path, rel: str, changed: str) -> Iterator[None]:
    """An inbox input refused or changed under a step, as the job's error: gone, it says
    what to do (``missing_input``); changed, it is retried, saying ``changed``."""
    try:
        yield
    except inputs.InputRefused as exc:
        if exc.kind == "missing":
            raise missing_input(folder, root / rel) from None
        raise
    except inputs.InputChanged:
        raise JobError(changed, retryable=True) from None


def missing_input(folder: Folder, path: Path) -> JobError:
    """An input is gone. If its whole inbox seems gone (an unmounted share), wait for it;
    otherwise the file was deleted, and the job fails saying so."""
    if inbox.unavailable(folder, None) or inbox.looks_emptied(folder):
        return JobError(
            f"{path} cannot be found and its inbox looks unavailable or empty; "
            "waiting for the inbox to come back",
            retryable=True,
        )
    return JobError(f"the input {path} disappeared (deleted or moved away) before it was uploaded")


def error_note(path: Path) -> Path:
    """``<name>.error.txt`` beside ``path``, shortened if the name would be too long."""
    return path.with_name(fit_name(path.name, ".error.txt"))


def set_aside_failed_input(
    folder: Folder, job: Job, message: str, config_path: Path, *, resumable: bool = False
) -> tuple[Path | None, str]:
    """Write ``<name>.error.txt`` into ``failed_dir`` and move the input beside it.

    Only the content the job took is moved: a newer take under the same name stays where
    it is (it is a recording of its own), and the note says so instead of advising a
    retry that would bill that newer take again (a ``resumable`` job's retry fetches its
    edit again and reads only its own recording: the note says how to put it back). With
    ``after = "keep"`` the input stays where it is; only the explanation is written.
    Return (where the input went, or None if it did not move; the note's text).
    """
    source = input_root(folder, job)
    replaced = False
    if job.facts.get("input_at"):
        target: Path | None = source  # already set aside (a retry failed again)
    elif folder.after == "keep" or job.facts.get("adhoc") or not os.path.lexists(source):
        target = None
        replaced = os.path.lexists(source) and not ours(folder, job)
    else:
        try:
            target = move_taken(folder, job, free_name(folder.failed_dir / job.name))
        except NotOurs:
            target, replaced = None, True
    note = target if target is not None else folder.failed_dir / job.name
    if replaced and resumable:
        advice = (
            f"{_now_at(source, bool(job.facts.get('session')))} It was left where it is.\n"
            f"Cleanvoice finished this recording's edit ({job.edit_id}) and keeps it for 7 "
            "days. If this job needs its recording (see Why), put it back in its place, then "
            f"run: cvsyncd retry -c {config_path} {job.id}\n"
            "A retry fetches the edit's results again, it does not pay for it again."
        )
    elif replaced:
        advice = (
            f"{_now_at(source, bool(job.facts.get('session')))} It was left where it is. "
            f"Nothing more is done for job {job.id}, and it is not retried: that would pay "
            "for a recording twice."
        )
    elif resumable:
        advice = (
            f"When the cause is fixed, run: cvsyncd retry -c {config_path} {job.id}\n"
            f"Cleanvoice finished this recording's edit ({job.edit_id}) and keeps it for 7 "
            "days: a retry fetches its results again, it does not pay for it again."
        )
    else:
        advice = f"When the cause is fixed, run: cvsyncd retry -c {config_path} {job.id}"
    text = f"cvsyncd could not process {job.name} (job {job.id}).\n\nWhy: {message}\n\n{advice}\n"
    write_bytes_atomic(error_note(note), text.encode("utf-8"))
    return target, text


def _now_at(source: Path, session: bool) -> str:
    """What is at a job's path now that it is not the recording the job took."""
    try:
        st = os.lstat(source)
    except OSError:
        return f"{source} is gone."
    if stat.S_ISDIR(st.st_mode) if session else stat.S_ISREG(st.st_mode):
        return (
            f"The file now at {source} is not the recording this job took: a newer one "
            "replaced it, and it is processed as a recording of its own."
        )
    return f"{inputs.refusal(source, inputs.kind_of(st.st_mode)).message}."


class Disposals(RuntimePart):
    """The dispose step of every job: disposing → done."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.log = structlog.get_logger("cvsyncd.pipeline")

    async def dispose(self, job: Job, folder: Folder) -> None:
        if folder.after != "keep":
            job = await self._dispose_inputs(job, folder)
        if job.edit_id:
            try:
                await self.client.delete_edit(job.edit_id)
                failpoint("dispose.deleted")
            except TransientApiError:
                if job.attempts + 1 < REMOTE_DELETE_TRIES:
                    raise
                self.log.warning(
                    ev.JOB_EDIT_NOT_DELETED,
                    job=job.id,
                    edit_id=job.edit_id,
                )
            except Exception as exc:
                self.log.warning(
                    ev.JOB_EDIT_NOT_DELETED,
                    job=job.id,
                    edit_id=job.edit_id,
                    error=str(exc),
                )
        done = self.store.transition(
            job.id,
            S.DISPOSING,
            S.DONE,
            "done",
            finished_at=time.time(),
            attempts=0,
            error=None,
            next_attempt_at=0,
            progress=None,
        )
        failpoint("dispose.done")
        if self.runtime.notices is not None:
            self.runtime.notices.job_ended(done, folder)
        self.log.info(
            ev.JOB_DONE, job=job.id, path=job.name, after=folder.after, moved_to=job.disposed_to
        )

    async def _dispose_inputs(self, job: Job, folder: Folder) -> Job:
        """Move or delete the input — only if it is still the content we processed."""
        if job.facts.get("adhoc"):
            return job  # given to `cvsyncd process` from outside any inbox: never touched
        root = input_root(folder, job)
        present = await asyncio.to_thread(os.path.lexists, root)
        if folder.after == "delete":
            try:
                await asyncio.to_thread(delete_taken, folder, job)
            except NotOurs as exc:
                self._left_in_place(job, str(exc))
            return job
        if job.disposed_to is None:  # plan the name first, so a redo finds the file
            target = await asyncio.to_thread(free_name, folder.done_dir / job.name)
            job = self.store.update(job.id, S.DISPOSING, None, disposed_to=str(target))
            failpoint("dispose.planned")
        target = Path(str(job.disposed_to))
        if not present:
            if not await asyncio.to_thread(os.path.lexists, target) and (
                inbox.unavailable(folder, None) or inbox.looks_emptied(folder)
            ):
                raise missing_input(folder, root)
            return job  # moved already (a redo after a crash), or removed by the user
        try:
            await asyncio.to_thread(move_taken, folder, job, target)
            failpoint("dispose.moved")
        except NotOurs as exc:
            self._left_in_place(job, str(exc))
            return self.store.update(job.id, S.DISPOSING, None, disposed_to=None)
        except FileExistsError:
            self.store.update(job.id, S.DISPOSING, None, disposed_to=None)
            raise JobError(
                f"{target} appeared meanwhile; choosing another name", retryable=True
            ) from None
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise JobError(
                    f"cannot move the input to {target.parent}: {exc.strerror}; "
                    "fix the permissions and it will be retried",
                    retryable=True,
                ) from None
            raise
        return job

    def _left_in_place(self, job: Job, why: str) -> None:
        self.log.warning(
            ev.JOB_INPUT_REPLACED,
            job=job.id,
            path=job.name,
            reason=why,
        )
