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
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
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
    SourceChanged,
    asides_of,
    copy_open_file,
    fit_name,
    free_name,
    fsync_dir,
    move_file,
    move_tree,
    remove_if_same,
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


@dataclass(frozen=True)
class Moved:
    """Where a job's recording went, and what of its session folder was left behind:
    entries the job did not take (a track that arrived after it was taken, say), which
    stay in the inbox, unprocessed by this job."""

    target: Path
    left: tuple[str, ...] = ()


def move_taken(folder: Folder, job: Job, target: Path) -> Moved:
    """Move the job's recording to ``target`` (never over an existing file).

    Raise NotOurs, changing nothing, if a file is not the content the job took — checked
    before the move, and after it: a file swapped in at the last instant is moved back.
    A move that a crash cut short is finished.

    A session folder holding only the job's tracks and its ``.ready`` marker is moved
    whole; one holding anything else has only those moved (into ``target``), and the rest
    stays in the inbox and is named in the result. To another filesystem each file is
    copied from a descriptor and its source removed only if it is still the file copied
    (:func:`_copy_across`): no link is followed, no FIFO opened, nothing but a regular
    file copied, and nothing removed that was not copied.
    """
    if job.facts.get("session"):
        return _move_session(folder, job, target)
    source = input_root(folder, job)
    base, rel = input_place(folder, job)
    if _moved_already(base, rel, target, job.inputs[0]):
        return Moved(target)
    if not ours(folder, job):
        raise NotOurs(f"{source} is not the recording job {job.id} took")
    _move_input(base, rel, target, job.inputs[0])
    return Moved(target)


def _move_session(folder: Folder, job: Job, target: Path) -> Moved:
    source = input_root(folder, job)
    tracks = [PurePosixPath(i.rel_path).name for i in job.inputs]
    base, rel = input_place(folder, job)
    session_rel = PurePosixPath(rel).parent.as_posix()
    pending = []
    for position, (name, taken) in enumerate(zip(tracks, job.inputs, strict=True)):
        if inputs.still_taken(*input_place(folder, job, position), taken):
            pending.append((name, taken))
        elif not (_moved_already(source, name, target / name, taken)):
            raise NotOurs(f"{source / name} is not the recording job {job.id} took")
    try:
        entries = set(os.listdir(source))
    except FileNotFoundError:
        entries = set()
    left = sorted(e for e in entries - set(tracks) - {READY_MARKER} if not inbox.system_entry(e))
    target.parent.mkdir(parents=True, exist_ok=True)
    if not left and len(pending) == len(tracks):
        try:
            move_tree(source, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        else:
            if all(_arrived(b, n, t) for b, n, t in _placed(target, job)):
                return Moved(target)
            move_tree(target, free_name(source))  # not ours after all: put it back
            raise NotOurs(f"{source} was replaced while it was being moved")
    # file by file: the job's tracks (and its marker) go, anything else stays
    if len(pending) == len(tracks) and os.path.lexists(target) and not _empty_folder(target):
        raise FileExistsError(errno.EEXIST, "destination exists", str(target))
    target.mkdir(parents=True, exist_ok=True)
    moved: list[tuple[str, InputFile]] = []
    try:
        for name, taken in pending:
            _move_input(base, f"{session_rel}/{name}", target / name, taken)
            moved.append((name, taken))
    except NotOurs:
        for name, _ in reversed(moved):  # put back what went, so that nothing changed
            _move_back(target / name, source / name)
        raise
    _move_marker(base, f"{session_rel}/{READY_MARKER}", target / READY_MARKER)
    try:
        source.rmdir()
        fsync_dir(source.parent)
    except FileNotFoundError:
        pass
    except OSError:  # not empty: what is in it now is what was left
        with contextlib.suppress(OSError):
            left = sorted(e for e in os.listdir(source) if not inbox.system_entry(e))
    else:
        left = []
    return Moved(target, tuple(left))


def _move_input(base: Path, rel: str, dest: Path, taken: InputFile) -> None:
    """Move the input ``base/rel``, checked to be ``taken``, to ``dest``; NotOurs if it
    is not (then it is where it was, or under a free name beside it)."""
    source = base / rel
    try:
        move_file(source, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _copy_across(base, rel, dest, taken)
        return
    if not _arrived(dest.parent, dest.name, taken):
        move_file(dest, free_name(source))  # not ours after all: put it back
        raise NotOurs(f"{source} was replaced while it was being moved")


def _copy_across(base: Path, rel: str, dest: Path, taken: InputFile | None) -> None:
    """Move ``base/rel`` to ``dest`` on another filesystem: copy it, then remove it.

    The source is opened below ``base`` without following links and without blocking
    (``inputs.open_regular``) and proven on its descriptor to be ``taken`` (None: any
    regular file); the copy is made from that descriptor and refused if the file changed
    meanwhile (NotOurs, nothing changed). The source is then removed only if it is still
    the very file copied: a newer take renamed into its place during the copy stays.
    """
    source = base / rel
    try:
        with inputs.open_regular(base, rel) as (file, st):
            if taken is not None and not taken.matches(st):
                raise NotOurs(f"{source} is not the recording that was taken")
            copied = copy_open_file(file, st, dest)
    except inputs.InputRefused as exc:
        raise NotOurs(exc.message) from None
    except SourceChanged:
        raise NotOurs(f"{source} changed while it was being copied; left in place") from None
    remove_if_same(source, copied)


def _move_marker(base: Path, rel: str, dest: Path) -> None:
    """Move a session's ``.ready`` marker along with its tracks, if it is a regular file."""
    source = base / rel
    try:
        st = os.lstat(source)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode) or os.path.lexists(dest):
        return  # not a marker we know (left, and named as left), or moved already
    try:
        move_file(source, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        with contextlib.suppress(NotOurs):
            _copy_across(base, rel, dest, None)


def _move_back(moved: Path, home: Path) -> None:
    """Undo one move of a session's track (the session was not all ours after all)."""
    try:
        move_file(moved, free_name(home))
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _copy_across(moved.parent, moved.name, free_name(home), None)


def _placed(target: Path, job: Job) -> list[tuple[Path, str, InputFile]]:
    """Where each input is after a move to ``target``: (folder, name, what was taken)."""
    if job.facts.get("session"):
        return [(target, PurePosixPath(i.rel_path).name, i) for i in job.inputs]
    return [(target.parent, target.name, job.inputs[0])]


def _empty_folder(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode) and not os.listdir(path)
    except OSError:
        return False


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


def _moved_already(base: Path, rel: str, target: Path, taken: InputFile) -> bool:
    """Whether a move of the input ``base/rel`` to ``target`` is already done, or was cut
    short by a crash between its two halves; if so, finish it.

    Done: nothing at the source, and the taken file at ``target``. Cut short within a
    filesystem: ``target`` is a hard link to the source (unlinked now). Cut short after a
    copy to another filesystem: the taken size and mtime at ``target``, and the source
    still the taken file (removed now, only if it still is).
    """
    source = base / rel
    try:
        b = os.lstat(target)
    except OSError:
        return False
    try:
        a = os.lstat(source)
    except FileNotFoundError:
        if not _arrived(target.parent, target.name, taken, copied=True):
            return False
        settle_asides(base, rel, taken, "remove")  # a removal a crash cut short
        return True
    except OSError:
        return False
    if not (stat.S_ISREG(a.st_mode) and _arrived(target.parent, target.name, taken, True)):
        return False
    if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino):
        os.unlink(source)
        fsync_dir(source.parent)
        return True
    if a.st_dev == b.st_dev or not inputs.still_taken(base, rel, taken):
        return False
    remove_if_same(source, a)
    return True


def _taken_stat(base: Path, rel: str, taken: InputFile) -> os.stat_result | None:
    """The fstat of ``base/rel`` if it is, right now, the regular file a job took."""
    try:
        with inputs.open_regular(base, rel) as (_, st):
            return st if taken.matches(st) else None
    except inputs.InputRefused:
        return None


def settle_asides(base: Path, rel: str, taken: InputFile, kind: str) -> None:
    """Finish what a crash cut short between setting the input ``base/rel`` aside (to be
    removed) and removing it: an aside that is the file taken is removed now; anything
    else (a newer take swapped in at that instant) goes back under the input's name, or a
    free one beside it. Only asides made for this name are looked at."""
    path = base / rel
    try:
        found = asides_of(path.parent, kind, path.name)
    except OSError:
        return
    for aside in found:
        if _arrived(aside.parent, aside.name, taken):
            os.unlink(aside)
        else:
            os.rename(aside, free_name(path))
        fsync_dir(path.parent)


def delete_taken(folder: Folder, job: Job) -> tuple[str, ...]:
    """Delete the job's recording, file by file, only where it is the content taken.

    Each file is first renamed to a hidden name beside it and checked there, so a file
    swapped in at the last instant is renamed back, not deleted. Raise NotOurs (after
    deleting what was ours) if any file was not the job's. Return what a session folder
    still holds that the job did not take (it stays, and the folder with it).
    """
    left: tuple[str, ...] = ()
    strangers = []
    for position, taken in enumerate(job.inputs):
        base, rel = input_place(folder, job, position)
        path = base / rel
        st = _taken_stat(base, rel, taken)
        if st is None:
            settle_asides(base, rel, taken, "delete")  # a deletion a crash cut short
            if os.path.lexists(path):
                strangers.append(str(path))
            continue
        if not remove_if_same(path, st, "delete"):  # swapped at the last instant: back
            strangers.append(str(path))
    if job.facts.get("session"):
        root = input_root(folder, job)
        with contextlib.suppress(FileNotFoundError):
            (root / READY_MARKER).unlink()
        try:
            root.rmdir()
        except FileNotFoundError:
            pass
        except OSError:  # not empty: what the job did not take stays
            with contextlib.suppress(OSError):
                left = tuple(sorted(e for e in os.listdir(root) if not inbox.system_entry(e)))
    if strangers:
        raise NotOurs(f"not the recording job {job.id} took, left in place: {', '.join(strangers)}")
    return left


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
    left: tuple[str, ...] = ()
    if job.facts.get("input_at"):
        target: Path | None = source  # already set aside (a retry failed again)
    elif folder.after == "keep" or job.facts.get("adhoc") or not os.path.lexists(source):
        target = None
        replaced = os.path.lexists(source) and not ours(folder, job)
    else:
        try:
            moved = move_taken(folder, job, free_name(folder.failed_dir / job.name))
        except NotOurs:
            target, replaced = None, True
        else:
            target, left = moved.target, moved.left
            tell_left(job, source, moved.left, moved.target)
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
    if left:
        text += f"\n{left_behind(source, left)}\n"
    write_bytes_atomic(error_note(note), text.encode("utf-8"))
    return target, text


def left_behind(source: Path, left: tuple[str, ...]) -> str:
    """What was left in a session folder that the job did not take, in plain words."""
    return (
        f"Left in {source}, not processed with this session (the job did not take "
        f"{'it' if len(left) == 1 else 'them'}): {', '.join(left)}. A track left there is "
        "taken as a recording of its own once it settles."
    )


def tell_left(job: Job, source: Path, left: tuple[str, ...], moved_to: Path | None) -> None:
    """Log what a move (to ``moved_to``) or a deletion (None) left in a session folder
    (nothing is logged if nothing was left)."""
    if left:
        structlog.get_logger("cvsyncd.pipeline").warning(
            ev.JOB_SESSION_LEFT,
            job=job.id,
            path=job.name,
            left=list(left),
            moved_to=str(moved_to) if moved_to is not None else None,
            reason=left_behind(source, left),
        )


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
            f"done. {job.facts['left_behind']}" if job.facts.get("left_behind") else "done",
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

    def _say_left(self, job: Job, root: Path, left: tuple[str, ...], moved_to: Path | None) -> Job:
        """Log what a session folder kept that the job did not take, and keep it for the
        job's last message."""
        tell_left(job, root, left, moved_to)
        if not left:
            return job
        facts = {**job.facts, "left_behind": left_behind(root, left)}
        return self.store.update(job.id, S.DISPOSING, None, facts=facts)

    async def _dispose_inputs(self, job: Job, folder: Folder) -> Job:
        """Move or delete the input — only if it is still the content we processed."""
        if job.facts.get("adhoc"):
            return job  # given to `cvsyncd process` from outside any inbox: never touched
        root = input_root(folder, job)
        present = await asyncio.to_thread(os.path.lexists, root)
        if folder.after == "delete":
            try:
                left = await asyncio.to_thread(delete_taken, folder, job)
            except NotOurs as exc:
                self._left_in_place(job, str(exc))
                return job
            return self._say_left(job, root, left, None)
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
            if not job.facts.get("session"):  # a copy's source set aside when a crash came
                base, rel = input_place(folder, job)
                await asyncio.to_thread(settle_asides, base, rel, job.inputs[0], "remove")
            return job  # moved already (a redo after a crash), or removed by the user
        try:
            moved = await asyncio.to_thread(move_taken, folder, job, target)
            failpoint("dispose.moved")
            job = self._say_left(job, root, moved.left, moved.target)
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
