"""Moving a job's recording out of the inbox (after = "move", or set aside when it failed),
on real folders: within one filesystem and to another one (/dev/shm is tmpfs here, the
test folder is not)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import threading
from pathlib import Path

import pytest

from cvsyncd.cleanvoice.client import client_for
from cvsyncd.config import Config, DaemonSettings, Folder
from cvsyncd.config.model import CleanvoiceSettings
from cvsyncd.inbox import inputs
from cvsyncd.jobs import InputFile, Job, JobState, Store
from cvsyncd.outbox.files import aside_name, is_temp_name
from cvsyncd.pipeline.disposal import (
    READY_MARKER,
    Disposals,
    Moved,
    NotOurs,
    delete_taken,
    move_taken,
)
from cvsyncd.pipeline.runtime import Runtime
from tests.conftest import wait_until


def folder_for(tmp_path: Path, done: Path) -> Folder:
    inbox = tmp_path / "inbox"
    inbox.mkdir(exist_ok=True)
    return Folder(
        inbox=inbox,
        outbox=tmp_path / "out",
        preset=None,
        options={},
        after="move",
        done_dir=done,
        failed_dir=tmp_path / "failed",
        multitrack=True,
    )


def job_of(folder: Folder, name: str, rels: list[str], session: bool) -> Job:
    """A job that took ``rels`` (below the inbox) as they are now."""
    taken = []
    for rel in rels:
        st, digest = inputs.fingerprint(folder.inbox, rel)
        taken.append(InputFile.of(rel, st, digest))
    facts = {"session": True} if session else {}
    return Job(1, folder.key, name, "f" * 64, {}, JobState.DISPOSING, tuple(taken), facts=facts)


def make_session(
    folder: Folder, name: str = "sess", mode: int = 0o644
) -> tuple[Job, dict[str, bytes]]:
    """A session of two tracks and its marker, taken by a job."""
    session = folder.inbox / name
    session.mkdir()
    tracks = {"ana.wav": os.urandom(100_000), "ben.wav": os.urandom(120_000)}
    for track, data in tracks.items():
        (session / track).write_bytes(data)
        os.chmod(session / track, mode)
    (session / READY_MARKER).touch()
    return job_of(folder, name, [f"{name}/{t}" for t in tracks], session=True), tracks


def files_below(root: Path) -> dict[str, bytes]:
    """Every regular file below ``root`` (no link followed) and its content."""
    found = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


def test_a_link_in_a_session_moved_across_filesystems_is_neither_followed_nor_moved(
    tmp_path: Path, elsewhere: Path
) -> None:
    folder = folder_for(tmp_path, elsewhere / "done")
    job, tracks = make_session(folder)
    private = tmp_path / "private" / "secrets.txt"
    private.parent.mkdir()
    private.write_bytes(b"the user's private notes, never to be copied")
    link = folder.inbox / "sess" / "cal.wav"
    link.symlink_to(private)

    moved = move_taken(folder, job, folder.done_dir / "sess")

    done = files_below(folder.done_dir)
    assert done == {"sess/ana.wav": tracks["ana.wav"], "sess/ben.wav": tracks["ben.wav"]} | {
        f"sess/{READY_MARKER}": b""
    }
    assert not any(b"private notes" in data for data in done.values())
    assert not (folder.done_dir / "sess" / "cal.wav").exists()
    assert link.is_symlink() and os.readlink(link) == str(private)  # left where it was
    assert sorted(os.listdir(folder.inbox / "sess")) == ["cal.wav"]
    assert private.read_bytes() == b"the user's private notes, never to be copied"
    assert moved.target == folder.done_dir / "sess"
    assert moved.left == ("cal.wav",)


def test_a_fifo_in_a_session_moved_across_filesystems_blocks_nothing(
    tmp_path: Path, elsewhere: Path
) -> None:
    folder = folder_for(tmp_path, elsewhere / "done")
    job, tracks = make_session(folder)
    fifo = folder.inbox / "sess" / "cal.wav"
    os.mkfifo(fifo)
    outcome: list[object] = []

    def move() -> None:
        try:
            outcome.append(move_taken(folder, job, folder.done_dir / "sess"))
        except BaseException as exc:  # reported by the assertion below
            outcome.append(exc)

    mover = threading.Thread(target=move, daemon=True)
    mover.start()
    mover.join(timeout=20)
    hung = mover.is_alive()
    if hung:  # unblock the reader stuck in open(), so the thread can end
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        mover.join(timeout=20)
    assert not hung, "the move blocked on the FIFO in the session folder"
    [moved] = outcome
    assert not isinstance(moved, BaseException), moved
    assert os.path.lexists(fifo) and not fifo.is_file()  # the FIFO stays in the inbox
    assert sorted(files_below(folder.done_dir)) == [
        f"sess/{READY_MARKER}",
        "sess/ana.wav",
        "sess/ben.wav",
    ]
    assert (folder.done_dir / "sess" / "ana.wav").read_bytes() == tracks["ana.wav"]
    assert isinstance(moved, Moved) and moved.left == ("cal.wav",)


def test_a_new_take_renamed_into_place_during_the_copy_is_not_deleted(
    tmp_path: Path, elsewhere: Path
) -> None:
    folder = folder_for(tmp_path, elsewhere / "done")
    folder = Folder(**{**folder.__dict__, "multitrack": False})
    source = folder.inbox / "ep1.wav"
    # large enough (and sparse, so it costs no disk) that the copy takes a while
    with open(source, "wb") as f:
        f.write(b"old take")
        f.truncate(768 * 1024 * 1024)
    job = job_of(folder, "ep1.wav", ["ep1.wav"], session=False)
    new_take = folder.inbox / ".incoming.wav"
    new_take.write_bytes(b"the new take, recorded again")
    raced: list[bool] = []

    def copying() -> bool:
        return folder.done_dir.is_dir() and any(
            is_temp_name(n) for n in os.listdir(folder.done_dir)
        )

    def replace_during_the_copy() -> None:
        wait_until(copying, "the copy into the done folder to begin", timeout=30)
        os.rename(new_take, source)  # the user's tool renames the new take into place
        raced.append(not (folder.done_dir / "ep1.wav").exists())

    user = threading.Thread(target=replace_during_the_copy, daemon=True)
    user.start()
    try:
        moved = move_taken(folder, job, folder.done_dir / "ep1.wav")
    except NotOurs as exc:  # (what the code before this fix did, having deleted it)
        moved = exc  # type: ignore[assignment]
    user.join(timeout=30)
    assert raced == [True], "the copy ended before the new take was renamed into place"
    assert source.read_bytes() == b"the new take, recorded again"  # survived, in the inbox
    assert not isinstance(moved, NotOurs), moved
    done = folder.done_dir / "ep1.wav"
    with open(done, "rb") as copied:  # the done folder has the take that was processed
        assert copied.read(8) == b"old take"
    assert done.stat().st_size == 768 * 1024 * 1024
    assert sorted(os.listdir(folder.inbox)) == ["ep1.wav"]  # nothing hidden left aside
    assert moved.target == done


def test_a_file_changed_in_place_during_the_copy_is_not_moved(
    tmp_path: Path, elsewhere: Path
) -> None:
    folder = folder_for(tmp_path, elsewhere / "done")
    folder = Folder(**{**folder.__dict__, "multitrack": False})
    source = folder.inbox / "ep1.wav"
    with open(source, "wb") as f:
        f.write(b"old take")
        f.truncate(768 * 1024 * 1024)
    job = job_of(folder, "ep1.wav", ["ep1.wav"], session=False)

    def copying() -> bool:
        return folder.done_dir.is_dir() and any(
            is_temp_name(n) for n in os.listdir(folder.done_dir)
        )

    def append_during_the_copy() -> None:
        wait_until(copying, "the copy into the done folder to begin", timeout=30)
        with open(source, "ab") as f:  # still being written, say
            f.write(b"more")

    inode = source.stat().st_ino
    user = threading.Thread(target=append_during_the_copy, daemon=True)
    user.start()
    with pytest.raises(NotOurs) as refused:
        move_taken(folder, job, folder.done_dir / "ep1.wav")
    user.join(timeout=30)
    # left in place, untouched: the same file, not a copy put back
    assert source.stat().st_ino == inode
    assert source.stat().st_size == 768 * 1024 * 1024 + 4
    assert os.listdir(folder.done_dir) == []  # no copy kept, no temp file left
    assert "changed while it was being copied" in str(refused.value)


def test_a_track_arriving_during_a_session_copy_across_filesystems_is_not_deleted(
    tmp_path: Path, elsewhere: Path
) -> None:
    folder = folder_for(tmp_path, elsewhere / "done")
    session = folder.inbox / "sess"
    session.mkdir()
    for track in ("ana.wav", "ben.wav"):
        with open(session / track, "wb") as f:  # sparse: a long copy that costs no disk
            f.write(track.encode())
            f.truncate(384 * 1024 * 1024)
        os.chmod(session / track, 0o640)
    (session / READY_MARKER).touch()
    job = job_of(folder, "sess", ["sess/ana.wav", "sess/ben.wav"], session=True)
    mtime = (session / "ben.wav").stat().st_mtime_ns
    late = session / "cal.wav"

    def copying() -> bool:
        done = folder.done_dir / "sess"
        return done.is_dir() and any(is_temp_name(n) for n in os.listdir(done))

    def arrive_during_the_copy() -> None:
        wait_until(copying, "the copy into the done folder to begin", timeout=30)
        late.write_bytes(b"a third speaker, arriving while the session is copied")

    user = threading.Thread(target=arrive_during_the_copy, daemon=True)
    user.start()
    moved = move_taken(folder, job, folder.done_dir / "sess")
    user.join(timeout=30)

    assert late.read_bytes() == b"a third speaker, arriving while the session is copied"
    assert sorted(os.listdir(session)) == ["cal.wav"]
    assert not (folder.done_dir / "sess" / "cal.wav").exists()
    ben = folder.done_dir / "sess" / "ben.wav"
    with open(ben, "rb") as copied:
        assert copied.read(7) == b"ben.wav"
    # mode and times come from the copied descriptor
    assert (ben.stat().st_mode & 0o777, ben.stat().st_mtime_ns) == (0o640, mtime)
    assert moved.left == ("cal.wav",)


def test_a_session_with_a_track_it_did_not_take_moves_only_its_tracks(tmp_path: Path) -> None:
    folder = folder_for(tmp_path, tmp_path / "inbox" / "done")
    job, tracks = make_session(folder)
    late = folder.inbox / "sess" / "cal.wav"
    late.write_bytes(b"a third speaker, arrived after the session was taken")

    moved = move_taken(folder, job, folder.done_dir / "sess")

    assert files_below(folder.done_dir) == {
        "sess/ana.wav": tracks["ana.wav"],
        "sess/ben.wav": tracks["ben.wav"],
        f"sess/{READY_MARKER}": b"",
    }
    assert os.listdir(folder.inbox / "sess") == ["cal.wav"]
    assert late.read_bytes() == b"a third speaker, arrived after the session was taken"
    assert moved.left == ("cal.wav",)


def test_what_the_system_leaves_in_a_session_is_not_a_file_left_behind(tmp_path: Path) -> None:
    """Synology indexes every folder into ``@eaDir``, a Mac writes ``.DS_Store``: a session
    holding only those beside its tracks is moved whole, as it always was, without a word."""
    folder = folder_for(tmp_path, tmp_path / "inbox" / "done")
    job, tracks = make_session(folder)
    (folder.inbox / "sess" / "@eaDir").mkdir()
    (folder.inbox / "sess" / "@eaDir" / "ana.wav@SynoEAStream").write_bytes(b"index")
    (folder.inbox / "sess" / ".DS_Store").write_bytes(b"finder")

    moved = move_taken(folder, job, folder.done_dir / "sess")

    assert moved.left == ()
    assert not (folder.inbox / "sess").exists()
    below = files_below(folder.done_dir)
    assert below["sess/ana.wav"] == tracks["ana.wav"] and "sess/.DS_Store" in below
    assert "sess/@eaDir/ana.wav@SynoEAStream" in below


def test_a_session_deleted_after_it_was_done_keeps_and_names_a_track_it_did_not_take(
    tmp_path: Path,
) -> None:
    folder = folder_for(tmp_path, tmp_path / "inbox" / "done")
    job, _ = make_session(folder)
    late = folder.inbox / "sess" / "cal.wav"
    late.write_bytes(b"a third speaker, arrived after the session was taken")

    left = delete_taken(folder, job)

    assert left == ("cal.wav",)
    assert sorted(os.listdir(folder.inbox / "sess")) == ["cal.wav"]
    assert late.read_bytes() == b"a third speaker, arrived after the session was taken"


def test_a_deletion_cut_short_after_the_file_was_set_aside_is_finished(tmp_path: Path) -> None:
    """A crash between renaming the input aside and unlinking it: the redo finds the aside
    by the input's name and removes it, since it is the file taken."""
    folder = folder_for(tmp_path, tmp_path / "inbox" / "done")
    (folder.inbox / "ep.wav").write_bytes(os.urandom(50_000))
    job = job_of(folder, "ep.wav", ["ep.wav"], session=False)
    os.rename(folder.inbox / "ep.wav", folder.inbox / aside_name("delete", "ep.wav"))

    assert delete_taken(folder, job) == ()
    assert os.listdir(folder.inbox) == []


def test_a_newer_take_set_aside_when_a_deletion_was_cut_short_comes_back(tmp_path: Path) -> None:
    """The same crash, but what was set aside is a newer take swapped in at that instant:
    it is put back under its name, never removed, and the job says it was not its file."""
    folder = folder_for(tmp_path, tmp_path / "inbox" / "done")
    (folder.inbox / "ep.wav").write_bytes(os.urandom(50_000))
    job = job_of(folder, "ep.wav", ["ep.wav"], session=False)
    newer = os.urandom(60_000)
    (folder.inbox / aside_name("delete", "ep.wav")).write_bytes(newer)
    (folder.inbox / "ep.wav").unlink()  # the taken file was gone by then

    with pytest.raises(NotOurs):
        delete_taken(folder, job)
    assert os.listdir(folder.inbox) == ["ep.wav"]
    assert (folder.inbox / "ep.wav").read_bytes() == newer


def test_a_move_across_filesystems_cut_short_before_the_source_was_removed_is_finished(
    tmp_path: Path, elsewhere: Path
) -> None:
    """The copy is in place on the other filesystem; the crash came between setting the
    source aside and removing it. The redo removes the aside: it is the file copied."""
    folder = folder_for(tmp_path, elsewhere / "done")
    data = os.urandom(80_000)
    (folder.inbox / "ep.wav").write_bytes(data)
    job = job_of(folder, "ep.wav", ["ep.wav"], session=False)
    target = elsewhere / "done" / "ep.wav"
    target.parent.mkdir()
    shutil.copy2(folder.inbox / "ep.wav", target)
    os.rename(folder.inbox / "ep.wav", folder.inbox / aside_name("remove", "ep.wav"))

    assert move_taken(folder, job, target).target == target
    assert os.listdir(folder.inbox) == []
    assert target.read_bytes() == data


def test_the_dispose_step_redone_after_such_a_crash_finishes_the_removal(
    tmp_path: Path, elsewhere: Path
) -> None:
    """The same crash as above, as the daemon's dispose step meets it on its redo: the
    input's path is empty, its copy in place, and the aside is removed."""
    folder = folder_for(tmp_path, elsewhere / "done")
    (folder.inbox / "ep.wav").write_bytes(os.urandom(80_000))
    job = job_of(folder, "ep.wav", ["ep.wav"], session=False)
    target = elsewhere / "done" / "ep.wav"
    target.parent.mkdir()
    shutil.copy2(folder.inbox / "ep.wav", target)
    os.rename(folder.inbox / "ep.wav", folder.inbox / aside_name("remove", "ep.wav"))
    config = Config(
        path=tmp_path / "cvsyncd.toml",
        cleanvoice=CleanvoiceSettings(base_url="http://127.0.0.1:9/v2"),
        daemon=DaemonSettings(state_dir=tmp_path / "state"),
        folders=(folder,),
    )
    store = Store.open(config.daemon.state_dir)
    try:
        steps = Disposals(Runtime(config, store, client_for(config.cleanvoice, "k")))
        redo = dataclasses.replace(job, disposed_to=str(target))
        asyncio.run(steps._dispose_inputs(redo, folder))
    finally:
        store.close()
    assert os.listdir(folder.inbox) == []
