"""The watcher with real watchdog observers on real folders.

The pipeline's intake is replaced by a recorder (the watcher's contract is only: hand over
settled candidate files, once); everything else — inotify, scans, settling — is real.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cvsyncd.config import Folder
from cvsyncd.inbox.observers import FolderWatch, start_observer, stop_observer
from cvsyncd.inbox.rules import ignored_name, is_candidate
from cvsyncd.inbox.watcher import CHECK_SECONDS, REST_CHECK_SECONDS, Watcher
from tests.conftest import wait_until

SETTLE = 0.6


def make_folder(tmp_path: Path) -> Folder:
    inbox = tmp_path / "inbox"
    inbox.mkdir(exist_ok=True)
    return Folder(
        inbox=inbox,
        outbox=tmp_path / "outbox",
        preset=None,
        options={},
        after="move",
        done_dir=inbox / "done",
        failed_dir=inbox / "failed",
    )


class Recorder:
    """Stands in for the pipeline's intake: records what the watcher hands over."""

    def __init__(self, verdicts: dict[str, list[str]] | None = None):
        self.taken: list[tuple[Path, float, int]] = []
        self.verdicts = verdicts or {}
        self.known: set[str] = set()

    async def intake(self, folder: Folder, path: Path) -> str:
        self.taken.append((path, time.monotonic(), path.stat().st_size))
        queue = self.verdicts.get(path.name)
        return queue.pop(0) if queue else "queued"

    def is_known(self, folder: Folder, rel: str, size: int, mtime_ns: int) -> bool:
        return rel in self.known


async def watch(
    folder: Folder,
    recorder: Recorder,
    action: Callable[[], object],
    until: Callable[[], bool],
    timeout: float = 15.0,
) -> None:
    """Run a watcher, perform ``action`` (sync or async) once its observers are up, wait
    for ``until``, then check that nothing more is handed over for two settle windows (a
    second hand-over of a settled file would come within one)."""
    stop = asyncio.Event()
    watcher = Watcher((folder,), SETTLE, recorder.intake, recorder.is_known)
    task = asyncio.create_task(watcher.run(stop))
    try:
        await asyncio.wait_for(watcher.started.wait(), 10)  # the observers are up
        result = action()
        if asyncio.iscoroutine(result):
            await result
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, f"not handed over within {timeout} s"
            await asyncio.sleep(0.05)
        taken = len(recorder.taken)
        quiet_until = time.monotonic() + SETTLE * 2
        while time.monotonic() < quiet_until:
            assert len(recorder.taken) == taken, "handed over again after it was taken"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


@pytest.mark.parametrize(
    "name",
    [
        ".ep1.wav.Xy12Ab",
        "ep1.wav.part",
        "ep1.partial",
        "ep1.tmp",
        "ep1.wav.crdownload",
        "~$ep1.wav",
        "._ep1.wav",
        ".DS_Store",
        "Thumbs.db",
        "desktop.ini",
        "@eaDir",
        "#recycle",
        "~syncthing~ep1.wav.tmp",
        ".syncthing.ep1.wav.tmp",
        ".nfs0000000012345",
        ".cvsyncd-ab12.part",
    ],
)
def test_temp_hidden_and_system_names_are_ignored(name: str) -> None:
    assert ignored_name(name)


def test_candidates(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    inbox = folder.inbox
    assert is_candidate(folder, inbox / "show" / "ep1.wav")
    assert is_candidate(folder, inbox / "Ep 1 – Ünïcode.MP3")  # noqa: RUF001
    assert not is_candidate(folder, inbox / "notes.txt")
    assert not is_candidate(folder, inbox / "done" / "ep1.wav")
    assert not is_candidate(folder, inbox / "failed" / "ep1.wav")
    assert not is_candidate(folder, inbox / "@eaDir" / "ep1.wav")
    assert not is_candidate(folder, inbox / ".hidden" / "ep1.wav")
    assert not is_candidate(folder, tmp_path / "elsewhere.wav")


def test_a_slow_writer_is_taken_once_after_it_settles(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    recorder = Recorder()
    target = folder.inbox / "ep1.wav"
    last_write = [0.0]

    async def trickle() -> None:
        with open(target, "wb") as f:
            for _ in range(8):  # longer than the settle window in total, gaps shorter
                f.write(os.urandom(4096))
                f.flush()
                last_write[0] = time.monotonic()
                await asyncio.sleep(SETTLE / 3)

    asyncio.run(watch(folder, recorder, trickle, lambda: bool(recorder.taken)))
    assert len(recorder.taken) == 1
    path, when, size = recorder.taken[0]
    assert path == target and size == 8 * 4096
    assert when - last_write[0] >= SETTLE


def test_files_present_at_start_are_found_by_the_scan(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    (folder.inbox / "old").mkdir()
    (folder.inbox / "old" / "ep0.mp3").write_bytes(b"x" * 100)
    (folder.inbox / "done").mkdir()
    (folder.inbox / "done" / "finished.mp3").write_bytes(b"x" * 100)
    (folder.inbox / "known.wav").write_bytes(b"x" * 100)
    recorder = Recorder()
    recorder.known.add("known.wav")
    asyncio.run(watch(folder, recorder, lambda: None, lambda: bool(recorder.taken)))
    assert [p.name for p, _, _ in recorder.taken] == ["ep0.mp3"]


def test_a_directory_moved_in_is_taken_file_by_file(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    staging = tmp_path / "staging" / "season2"
    staging.mkdir(parents=True)
    for i in range(3):
        (staging / f"ep{i}.flac").write_bytes(b"f" * (1000 + i))
    (staging / "cover.jpg").write_bytes(b"jpg")
    recorder = Recorder()
    asyncio.run(
        watch(
            folder,
            recorder,
            lambda: shutil.move(str(staging), str(folder.inbox / "season2")),
            lambda: len(recorder.taken) >= 3,
        )
    )
    assert sorted(p.name for p, _, _ in recorder.taken) == ["ep0.flac", "ep1.flac", "ep2.flac"]


def test_rsync_style_temp_then_rename_is_taken_once_under_its_final_name(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    recorder = Recorder()

    def rsync_like() -> None:
        temp = folder.inbox / ".ep5.wav.AbC123"
        temp.write_bytes(b"w" * 50_000)
        os.rename(temp, folder.inbox / "ep5.wav")

    asyncio.run(watch(folder, recorder, rsync_like, lambda: bool(recorder.taken)))
    assert [(p.name, size) for p, _, size in recorder.taken] == [("ep5.wav", 50_000)]


def test_a_file_that_changed_during_intake_settles_again(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    recorder = Recorder(verdicts={"ep7.wav": ["changed", "queued"]})
    asyncio.run(
        watch(
            folder,
            recorder,
            lambda: (folder.inbox / "ep7.wav").write_bytes(b"a" * 10),
            lambda: len(recorder.taken) >= 2,
        )
    )
    assert [p.name for p, _, _ in recorder.taken] == ["ep7.wav", "ep7.wav"]
    # it settles again from the moment it was handed back, not at the next inbox check
    # (every REST_CHECK_SECONDS at rest): the watcher is woken to watch it
    gap = recorder.taken[1][1] - recorder.taken[0][1]
    assert gap < CHECK_SECONDS < REST_CHECK_SECONDS, f"handed over again after {gap:.1f} s"


def test_a_missing_inbox_is_watched_once_it_appears(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    folder.inbox.rmdir()
    recorder = Recorder()

    def create() -> None:
        folder.inbox.mkdir()
        (folder.inbox / "late.flac").write_bytes(b"o" * 10)

    # the inboxes are checked every CHECK_SECONDS; the inbox's files are scanned when it is back
    assert CHECK_SECONDS < 25 / 2
    asyncio.run(watch(folder, recorder, create, lambda: bool(recorder.taken), timeout=25))
    assert [p.name for p, _, _ in recorder.taken] == ["late.flac"]


def _inotify_masks() -> dict[int, int]:
    """The kernel's inotify watches of this process: inode watched -> event mask."""
    masks: dict[int, int] = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            if "inotify" not in os.readlink(f"/proc/self/fd/{fd}"):
                continue
            info = Path(f"/proc/self/fdinfo/{fd}").read_text()
        except OSError:
            continue  # closed meanwhile
        for line in info.splitlines():
            if line.startswith("inotify wd:"):
                fields = dict(f.split(":", 1) for f in line.split()[1:])
                masks[int(fields["ino"], 16)] = int(fields["mask"], 16)
    return masks


def test_the_inbox_is_not_watched_for_files_being_opened_or_read(tmp_path: Path) -> None:
    """The daemon opens every input several times itself; each open and close would be an
    event for the observer to parse and drop. The kernel is asked for none of them, on
    the inbox and on folders made in it later, while writes are still seen."""
    in_open, in_close_nowrite, in_close_write, in_create = 0x20, 0x10, 0x08, 0x100
    folder = make_folder(tmp_path)
    (folder.inbox / "ep1.wav").write_bytes(b"x" * 100)
    noted: list[tuple[str, str]] = []

    async def run() -> None:
        watch = FolderWatch(folder)
        start_observer(
            watch, asyncio.get_running_loop(), lambda f, p, w: noted.append((p.name, w)), 1
        )
        try:
            show = folder.inbox / "show"
            show.mkdir()
            await asyncio.to_thread(wait_until, lambda: ("show", "directory") in noted, "show")
            (show / "ep2.wav").write_bytes(b"y" * 100)
            await asyncio.to_thread(wait_until, lambda: ("ep2.wav", "file") in noted, "ep2.wav")
            masks = _inotify_masks()
            for watched in (folder.inbox, show):
                mask = masks[watched.stat().st_ino]
                assert mask & (in_open | in_close_nowrite) == 0, hex(mask)
                assert mask & in_close_write and mask & in_create, hex(mask)
        finally:
            stop_observer(watch)

    asyncio.run(run())
