"""Durable file operations on real folders."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

import pytest

from cvsyncd.outbox.files import (
    AtomicFile,
    copy_open_file,
    free_name,
    is_temp_name,
    move_file,
    remove_file,
    remove_if_same,
    sha256_file,
    sweep_temp_files,
    write_bytes_atomic,
)


def test_atomic_file_appears_only_on_commit(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "ep1.wav"
    out = AtomicFile(dest)
    out.file.write(b"x" * 1000)
    assert not dest.exists()
    temps = list(dest.parent.iterdir())
    assert len(temps) == 1 and is_temp_name(temps[0].name)
    out.commit()
    assert dest.read_bytes() == b"x" * 1000
    assert list(dest.parent.iterdir()) == [dest]
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644


def test_discard_leaves_nothing(tmp_path: Path) -> None:
    out = AtomicFile(tmp_path / "a.txt")
    out.file.write(b"partial")
    out.discard()
    assert list(tmp_path.iterdir()) == []


def test_commit_without_overwrite_never_replaces_a_users_file(tmp_path: Path) -> None:
    dest = tmp_path / "ep1.mp3"
    dest.write_bytes(b"the user's own file")
    out = AtomicFile(dest)
    out.file.write(b"ours")
    with pytest.raises(FileExistsError):
        out.commit(overwrite=False)
    assert dest.read_bytes() == b"the user's own file"
    assert list(tmp_path.iterdir()) == [dest]  # our temp file is gone too


def test_write_bytes_atomic_overwrites_only_when_asked(tmp_path: Path) -> None:
    dest = tmp_path / "x.json"
    write_bytes_atomic(dest, b"1")
    write_bytes_atomic(dest, b"2")
    assert dest.read_bytes() == b"2"
    with pytest.raises(FileExistsError):
        write_bytes_atomic(dest, b"3", overwrite=False)
    assert dest.read_bytes() == b"2"


def test_free_name_adds_a_number_before_all_suffixes(tmp_path: Path) -> None:
    target = tmp_path / "ep1.cleanvoice.json"
    assert free_name(target) == target
    target.write_text("x")
    assert free_name(target).name == "ep1 (2).cleanvoice.json"
    (tmp_path / "ep1 (2).cleanvoice.json").write_text("x")
    assert free_name(target).name == "ep1 (3).cleanvoice.json"
    assert free_name(tmp_path / "README").name == "README"


def test_move_file_within_a_filesystem(tmp_path: Path) -> None:
    src = tmp_path / "in" / "ep1.wav"
    src.parent.mkdir()
    src.write_bytes(b"audio")
    dest = move_file(src, tmp_path / "done" / "sub" / "ep1.wav")
    assert not src.exists() and dest.read_bytes() == b"audio"


def test_move_file_refuses_to_overwrite(tmp_path: Path) -> None:
    src, dest = tmp_path / "a.wav", tmp_path / "b.wav"
    src.write_bytes(b"new")
    dest.write_bytes(b"existing")
    with pytest.raises(FileExistsError):
        move_file(src, dest)
    assert src.read_bytes() == b"new" and dest.read_bytes() == b"existing"


def test_move_file_across_filesystems_changes_nothing(tmp_path: Path, elsewhere: Path) -> None:
    src = tmp_path / "ep1.wav"
    src.write_bytes(b"audio")
    with pytest.raises(OSError) as refused:
        move_file(src, elsewhere / "done" / "ep1.wav")
    assert refused.value.errno == errno.EXDEV
    assert src.read_bytes() == b"audio" and list((elsewhere / "done").iterdir()) == []


def test_copy_open_file_across_filesystems_copies_durably(tmp_path: Path, elsewhere: Path) -> None:
    src = tmp_path / "ep1.wav"
    src.write_bytes(os.urandom(3 * 1024 * 1024))
    os.chmod(src, 0o640)
    os.utime(src, ns=(1_600_000_000_000_000_000, 1_500_000_000_123_456_789))
    digest = sha256_file(src)
    dest = elsewhere / "done" / "ep1.wav"
    with open(src, "rb") as f:
        copied = copy_open_file(f, os.fstat(f.fileno()), dest)
    assert sha256_file(dest) == digest
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640
    assert dest.stat().st_mtime_ns == 1_500_000_000_123_456_789
    assert [p.name for p in dest.parent.iterdir()] == ["ep1.wav"]
    assert remove_if_same(src, copied) is True
    assert list(tmp_path.iterdir()) == []


def test_copy_open_file_never_overwrites(tmp_path: Path) -> None:
    src, dest = tmp_path / "a.wav", tmp_path / "b.wav"
    src.write_bytes(b"new")
    dest.write_bytes(b"existing")
    with open(src, "rb") as f, pytest.raises(FileExistsError):
        copy_open_file(f, os.fstat(f.fileno()), dest)
    assert dest.read_bytes() == b"existing"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "b.wav"]


def test_remove_if_same_keeps_what_is_not_the_file_copied(tmp_path: Path) -> None:
    src = tmp_path / "ep1.wav"
    src.write_bytes(b"old take")
    copied = os.stat(src)
    (tmp_path / "new.wav").write_bytes(b"new take")
    os.rename(tmp_path / "new.wav", src)  # a new take renamed into place
    assert remove_if_same(src, copied) is False
    assert src.read_bytes() == b"new take"
    assert [p.name for p in tmp_path.iterdir()] == ["ep1.wav"]
    src.unlink()
    src.symlink_to(tmp_path / "elsewhere")
    assert remove_if_same(src, copied) is False
    assert src.is_symlink()
    assert remove_if_same(tmp_path / "gone.wav", copied) is False


def test_remove_file(tmp_path: Path) -> None:
    p = tmp_path / "x"
    p.write_bytes(b"1")
    assert remove_file(p) is True
    assert remove_file(p) is False


def test_sweep_removes_only_our_temp_files(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    ours = tmp_path / "a" / "b" / ".cvsyncd-0123456789ab.part"
    ours.write_bytes(b"half")
    kept = [tmp_path / "a" / "ep1.part", tmp_path / ".cvsyncd-notes.txt", tmp_path / "a" / "x.wav"]
    for p in kept:
        p.write_bytes(b"user")
    assert sweep_temp_files(tmp_path) == [ours]
    assert not ours.exists()
    assert all(p.exists() for p in kept)
    assert sweep_temp_files(tmp_path / "missing") == []


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    data = os.urandom(2 * 1024 * 1024 + 17)
    p = tmp_path / "f"
    p.write_bytes(data)
    assert sha256_file(p) == hashlib.sha256(data).hexdigest()
