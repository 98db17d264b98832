"""Where a config's folders really are, compared by what they resolve to.

The config's own checks compare the paths as written. On disk, an outbox may still be
the inbox under another name: a symbolic link, a ``..``, a symlinked parent, a bind mount.
Results written there would be taken as new recordings and, with the real service
(whose output differs from its input), submitted and billed again, forever. So ``check``,
``run`` and a reload also compare every inbox with every outbox, done and failed folder
by identity: each folder, or its nearest existing parent, is looked for among the
folders below each inbox by device and inode, which no link or mount can disguise.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from cvsyncd.config import Config, Folder
from cvsyncd.errors import Problem

Identity = tuple[int, int]
MAX_FOLDERS_LOOKED_AT = 200_000  # folders below one inbox; a bound, not a limit in practice


def identity(path: Path) -> Identity | None:
    """(device, inode) of the folder ``path`` leads to, links followed; None if missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def nearest_existing(path: Path) -> Path:
    """``path`` or the closest of its parents that exists."""
    for candidate in (path, *path.parents):
        if os.path.exists(candidate):
            return candidate
    return Path("/")


def folders_below(root: Path) -> set[Identity]:
    """The identities of ``root`` and every folder below it (links not followed)."""
    found: set[Identity] = set()
    start = identity(root)
    if start is None:
        return found
    found.add(start)
    for dirpath, dirnames, _ in os.walk(root, followlinks=False):
        for name in dirnames:
            ident = identity(Path(dirpath) / name)
            if ident is not None:
                found.add(ident)
        if len(found) > MAX_FOLDERS_LOOKED_AT:
            break
    return found


def lies_in(place: Path, below: set[Identity]) -> bool:
    """Whether ``place`` (or, if missing, where it would be created) is one of the folders
    of ``below``, or lies inside one, whatever links and mounts lead there."""
    real = Path(os.path.realpath(nearest_existing(place)))
    return any(identity(p) in below for p in (real, *real.parents))


def _places(folder: Folder) -> Iterator[tuple[str, Path]]:
    yield "outbox", folder.outbox
    yield "done_dir", folder.done_dir
    yield "failed_dir", folder.failed_dir


def overlaps(config: Config) -> list[Problem]:
    """Every way one folder's places lead into an inbox (or an inbox into an outbox), found
    on disk: an outbox, done or failed folder inside any inbox (a folder's own done and
    failed folders excepted: the watcher leaves them alone), an inbox inside another or
    inside an outbox."""
    problems: list[Problem] = []
    file = str(config.path)
    inboxes = [(folder, folders_below(folder.inbox)) for folder in config.folders]
    outboxes = [(folder, folders_below(folder.outbox)) for folder in config.folders]
    for index, folder in enumerate(config.folders, start=1):
        where = f"folders[{index}]"
        for key, place in _places(folder):
            for other, below in inboxes:
                own = other is folder
                if own and key != "outbox":
                    continue  # done/ and failed/ inside the inbox: left alone by design
                if not below or not lies_in(place, below):
                    continue
                whose = "its own inbox" if own else f"the inbox of folder {other.name!r}"
                problems.append(
                    Problem(
                        file,
                        f"{where}.{key}",
                        f"{place} leads into {whose} ({other.inbox}) on disk (through a link "
                        "or a mount): what is written there would be taken as new recordings "
                        "and billed again",
                        "a folder outside every inbox",
                    )
                )
        for other, below in inboxes:
            if other is not folder and below and lies_in(folder.inbox, below):
                problems.append(
                    Problem(
                        file,
                        f"{where}.inbox",
                        f"{folder.inbox} leads into the inbox of folder {other.name!r} "
                        f"({other.inbox}) on disk",
                        "inboxes apart from each other: each recording belongs to one folder",
                    )
                )
        for other, below in outboxes:
            if below and lies_in(folder.inbox, below):
                problems.append(
                    Problem(
                        file,
                        f"{where}.inbox",
                        f"{folder.inbox} leads into the outbox of folder {other.name!r} "
                        f"({other.outbox}) on disk: recordings and results would mix",
                        "a folder outside every outbox",
                    )
                )
    return problems
