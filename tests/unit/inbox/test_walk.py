"""The inbox walk applies the naming rules a folder at a time; whatever the tree and the
folder's ``ignore`` patterns, it must find exactly the files the per-file rule
(``is_candidate``) accepts, on real folders."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cvsyncd.config import Folder
from cvsyncd.inbox.rules import is_candidate, walk
from tests.unit.inbox.test_watcher import make_folder

NAMES = st.sampled_from(
    [
        "ep1.wav",
        "Ep2.MP3",
        "take.flac",
        "notes.txt",
        ".hidden.wav",
        "draft.wav.part",
        "~$lock.wav",
        "Thumbs.db",
        "wav",
        "mix.",
        "raw.m4a",
        "backup~",
    ]
)
DIRS = st.sampled_from(
    ["show", "season-2", ".sync", "@eaDir", "done", "failed", "archive", "old", "raw"]
)
PATTERNS = st.lists(
    st.sampled_from(["archive", "old/*", "*.m4a", "raw", "season-*/*.flac", "show/ep1.wav"]),
    max_size=3,
    unique=True,
)
TREES = st.lists(
    st.tuples(st.lists(DIRS, max_size=3), NAMES),
    min_size=1,
    max_size=25,
)


def _per_file(folder: Folder, start: Path) -> set[Path]:
    """What the rule accepts, one file at a time, below ``start``."""
    found = set()
    for dirpath, _dirs, files in os.walk(start):
        for name in files:
            path = Path(dirpath) / name
            if is_candidate(folder, path):
                found.add(path)
    return found


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=TREES, patterns=PATTERNS, sub=st.lists(DIRS, max_size=2))
def test_the_walk_finds_what_the_per_file_rule_accepts(
    tree: list[tuple[list[str], str]], patterns: list[str], sub: list[str]
) -> None:
    root = Path(tempfile.mkdtemp(prefix="cvsyncd-walk-"))
    try:
        folder = make_folder(root)  # an outbox inside the inbox: one more reserved place
        folder = dataclasses.replace(folder, outbox=folder.inbox / "out", ignore=tuple(patterns))
        inbox = folder.inbox
        for dirs, name in tree:
            parent = inbox.joinpath(*dirs)
            parent.mkdir(parents=True, exist_ok=True)
            (parent / name).write_bytes(b"x")
        for start in (inbox, inbox.joinpath(*sub)):  # a rescan, and a new folder's scan
            if not start.is_dir():
                continue
            walked = {Path(path) for path, _ in walk(folder, start)}
            assert walked == _per_file(folder, start)
        flat = dataclasses.replace(folder, ignore=())
        assert {Path(p) for p, _ in walk(flat)} == _per_file(flat, inbox)
    finally:
        shutil.rmtree(root)
