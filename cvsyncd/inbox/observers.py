"""One watchdog observer per inbox: inotify on a local disk, polling on a network share.

A network or FUSE filesystem gets a polling observer because inotify cannot see what
other machines write there (``watch = "auto"``, overridable per folder). Events are handed
from the observer's thread to the event loop as (folder, path, what): what is ``"file"``,
``"directory"`` (a folder created or moved in: scan it) or ``"gone"``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from cvsyncd import fsinfo
from cvsyncd.config import Folder
from cvsyncd.inbox import rules

POLL_OBSERVER_SECONDS = 5.0

Note = Callable[[Folder, Path, str], None]

# The events an inbox is watched for. Not a file being opened or closed unwritten: the
# daemon itself opens every input several times (fingerprint, probe, upload), and with
# inotify each open and close is an event to read, parse and throw away; asked this way,
# the kernel does not queue them at all (the watch mask lacks IN_OPEN and IN_CLOSE_NOWRITE)
WATCHED_EVENTS = [
    FileCreatedEvent,
    DirCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileMovedEvent,
    DirMovedEvent,
    FileDeletedEvent,
    DirDeletedEvent,
]


@dataclass
class FolderWatch:
    """What the watcher knows of one inbox."""

    folder: Folder
    observer: BaseObserver | None = None
    mode: str = "events"
    place: tuple[int, str] | None = None  # (device, filesystem type) the inbox was found on
    problem: str | None = None  # why the inbox is unavailable now
    next_rescan: float = 0.0
    told: set[Path] = field(default_factory=set)  # paths already explained in the log


class Forwarder(FileSystemEventHandler):
    """Runs in the observer's thread: hands every relevant path to the event loop."""

    def __init__(self, folder: Folder, loop: asyncio.AbstractEventLoop, note: Note):
        self.folder = folder
        self.loop = loop
        self.note = note

    def on_any_event(self, event: FileSystemEvent) -> None:
        # only the kinds of WATCHED_EVENTS come here: never a file opened or read
        raw = event.dest_path if event.event_type == "moved" else event.src_path
        path = Path(os.fsdecode(raw))
        if event.event_type == "deleted":
            what = "gone"
        elif event.is_directory:
            if event.event_type not in ("created", "moved"):
                return  # a folder's own mtime changing says nothing new
            what = "directory"  # e.g. a folder moved in with files inside: no event per file
        else:
            what = "file"
        self.loop.call_soon_threadsafe(self.note, self.folder, path, what)


def start_observer(
    watch: FolderWatch, loop: asyncio.AbstractEventLoop, note: Note, settle_seconds: float
) -> str:
    """Start the observer of ``watch``'s inbox (in a worker thread: it lists the tree);
    return why this kind of observer was chosen, for the log."""
    folder = watch.folder
    place = rules.place_of(folder)
    if watch.place is None or place[1] == watch.place[1]:
        watch.place = place  # a share mounted again may come back on another device
    network = fsinfo.is_network_filesystem(place[1])
    watch.mode = folder.watch if folder.watch != "auto" else ("poll" if network else "events")
    observer: BaseObserver = (
        PollingObserver(timeout=min(POLL_OBSERVER_SECONDS, max(1.0, settle_seconds)))
        if watch.mode == "poll"
        else Observer()
    )
    observer.schedule(
        Forwarder(folder, loop, note),
        str(folder.inbox),
        recursive=True,
        event_filter=WATCHED_EVENTS,
        follow_symlink=False,
    )
    observer.daemon = True
    observer.start()
    watch.observer = observer
    if folder.watch != "auto":
        return "by config"
    return "polling: inotify cannot see a network share" if network else "inotify: local filesystem"


def stop_observer(watch: FolderWatch) -> None:
    observer, watch.observer = watch.observer, None
    if observer is not None:
        observer.stop()
        if observer.is_alive():
            observer.join(timeout=5)
