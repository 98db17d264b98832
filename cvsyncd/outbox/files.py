"""Durable file operations: atomic outputs, safe moves, and sweeping our own leftovers.

The protocol for every file cvsyncd creates (docs/reliability.md, promise 1): write a temp file
in the destination folder under a name the watcher and media servers ignore
(``.cvsyncd-<random>.part``), fsync it, close it, rename it over the final name, then fsync
the folder. A reader sees the whole file or none of it, and after a crash the only debris
is a temp file that the next start removes.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import shutil
import zipfile
from pathlib import Path
from typing import IO

from cvsyncd.failpoints import failpoint

TEMP_PREFIX = ".cvsyncd-"
TEMP_SUFFIX = ".part"
COPY_BLOCK = 1024 * 1024


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one of our own temp files."""
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems (e.g. certain FUSE/SMB mounts) refuse
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


class AtomicFile:
    """A file that appears at ``dest`` only when ``commit`` succeeds.

    ``file`` is open for binary writing. ``commit`` fsyncs, closes, sets the mode (and the
    group, when given), renames and fsyncs the folder; ``discard`` removes the temp file.
    Either may be called from a worker thread.
    """

    def __init__(self, dest: Path, mode: int = 0o644, group: int | None = None):
        self.dest = dest
        self.mode = mode
        self.group = group
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.temp = dest.parent / f"{TEMP_PREFIX}{secrets.token_hex(6)}{TEMP_SUFFIX}"
        fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.file: IO[bytes] = os.fdopen(fd, "wb")

    def commit(self, overwrite: bool = True) -> Path:
        """Make the file durable and put it at ``dest``.

        With ``overwrite=False`` an existing ``dest`` is left alone and FileExistsError is
        raised (the temp file is removed): a user's file is never replaced.
        """
        try:
            self.file.flush()
            failpoint("output.before_fsync")
            os.fsync(self.file.fileno())
            self.file.close()
            if self.group is not None:
                os.chown(self.temp, -1, self.group)
            os.chmod(self.temp, self.mode)
            failpoint("output.before_rename")
            if overwrite:
                os.replace(self.temp, self.dest)
            else:
                _place_without_clobbering(self.temp, self.dest)
        except BaseException:
            self.discard()
            raise
        failpoint("output.after_rename")
        fsync_dir(self.dest.parent)
        return self.dest

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp)


def _place_without_clobbering(temp: Path, dest: Path) -> None:
    """Rename ``temp`` to ``dest`` unless ``dest`` exists (a hard link makes it atomic)."""
    try:
        os.link(temp, dest)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise FileExistsError(errno.EEXIST, "destination exists", str(dest)) from None
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EMLINK):
            raise
        if os.path.lexists(dest):  # no hard links on this filesystem: check, then rename
            raise FileExistsError(errno.EEXIST, "destination exists", str(dest)) from None
        os.rename(temp, dest)
        return
    os.unlink(temp)


def write_bytes_atomic(dest: Path, data: bytes, mode: int = 0o644, overwrite: bool = True) -> Path:
    out = AtomicFile(dest, mode)
    try:
        out.file.write(data)
    except BaseException:
        out.discard()
        raise
    return out.commit(overwrite)


NAME_MAX = 255  # bytes, on every filesystem cvsyncd is likely to meet


def fit_name(name: str, suffix: str) -> str:
    """``name + suffix``, with ``name`` shortened (at a character boundary) to fit NAME_MAX."""
    room = NAME_MAX - len(suffix.encode())
    encoded = name.encode()
    if len(encoded) > room:
        name = encoded[:room].decode("utf-8", "ignore")
    return name + suffix


def free_name(path: Path) -> Path:
    """Return ``path``, or ``name (2).ext``, ``name (3).ext`` … — the first that is free."""
    if not os.path.lexists(path):
        return path
    stem, suffix = _split_name(path.name)
    n = 2
    while True:
        candidate = path.with_name(f"{stem} ({n}){suffix}")
        if not os.path.lexists(candidate):
            return candidate
        n += 1


def _split_name(name: str) -> tuple[str, str]:
    """Split ``ep1.cleanvoice.json`` into ("ep1", ".cleanvoice.json") — at the first dot."""
    head, dot, tail = name.lstrip(".").partition(".")
    lead = name[: len(name) - len(name.lstrip("."))]
    return (lead + head, f".{tail}") if dot else (name, "")


def move_file(src: Path, dest: Path) -> Path:
    """Move ``src`` to ``dest`` durably and return ``dest``; never overwrite.

    Within one filesystem this is a rename (refused if ``dest`` exists); across
    filesystems the file is copied with the atomic protocol and the source removed only
    after the copy is durable.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        # fails if dest exists (no clobbering, unlike rename); a link is moved as a link
        os.link(src, dest, follow_symlinks=False)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise FileExistsError(errno.EEXIST, "destination exists", str(dest)) from None
        if exc.errno == errno.EXDEV:
            _copy_durably(src, dest)
        elif exc.errno in (errno.EPERM, errno.ENOTSUP, errno.EMLINK):
            # no hard links here (FAT, some shares): rename, after a last existence check
            if os.path.lexists(dest):
                raise FileExistsError(errno.EEXIST, "destination exists", str(dest)) from None
            os.rename(src, dest)
            fsync_dir(dest.parent)
            fsync_dir(src.parent)
            return dest
        else:
            raise
    fsync_dir(dest.parent)
    os.unlink(src)
    fsync_dir(src.parent)
    return dest


def move_tree(src: Path, dest: Path) -> Path:
    """Move the folder ``src`` (a multi-track session) to ``dest``; never overwrite.

    Within one filesystem this is one rename; across filesystems every file is copied with
    the atomic protocol, and the source removed only once all copies are durable.
    """
    if os.path.lexists(dest):
        raise FileExistsError(errno.EEXIST, "destination exists", str(dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(src, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    else:
        fsync_dir(dest.parent)
        fsync_dir(src.parent)
        return dest
    for dirpath, _dirnames, filenames in os.walk(src):
        target_dir = dest / Path(dirpath).relative_to(src)
        target_dir.mkdir(parents=True, exist_ok=True)
        for name in filenames:
            _copy_durably(Path(dirpath) / name, target_dir / name)
    shutil.rmtree(src)
    fsync_dir(src.parent)
    return dest


def _copy_durably(src: Path, dest: Path) -> None:
    out = AtomicFile(dest, mode=0o600)
    try:
        with open(src, "rb") as f:
            shutil.copyfileobj(f, out.file, COPY_BLOCK)
        shutil.copystat(src, out.temp)
        mode = os.stat(src).st_mode & 0o7777
        out.mode = mode
        if os.path.lexists(dest):
            raise FileExistsError(errno.EEXIST, "destination exists", str(dest))
    except BaseException:
        out.discard()
        raise
    out.commit()


def remove_file(path: Path) -> bool:
    """Delete ``path`` durably; return False if it was already gone."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    return True


def sweep_temp_files(root: Path) -> list[Path]:
    """Remove our own orphaned temp files under ``root``; return what was removed.

    Only names made by AtomicFile are touched, never anything else.
    """
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            if is_temp_name(name):
                path = Path(dirpath) / name
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                    removed.append(path)
    return removed


class ArchiveTooLarge(ValueError):
    """A ZIP archive unpacks to more bytes than allowed (a ZIP bomb, or a limit too low)."""


def extract_zip(
    archive: Path, directory: Path, *, mode: int = 0o644, group: int | None = None, max_bytes: int
) -> list[Path]:
    """Write each file of a ZIP archive into ``directory``, atomically, under its base name.

    Member paths are never trusted: only the base name is used, refused if empty or
    hidden, and the total size is capped (past it, ArchiveTooLarge). A damaged archive
    raises what ``zipfile`` raises. Either way the files this call wrote are removed
    again: a half-unpacked archive is never left behind.
    """
    written: list[Path] = []
    total = 0
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():
                name = os.path.basename(member.filename.replace("\\", "/"))
                if member.is_dir() or not name or name.startswith(".") or "\x00" in name:
                    continue
                out = AtomicFile(directory / name, mode, group)
                try:
                    with zf.open(member) as source:
                        while block := source.read(COPY_BLOCK):
                            total += len(block)
                            if total > max_bytes:
                                raise ArchiveTooLarge(
                                    f"the archive holds more than {max_bytes} bytes"
                                )
                            out.file.write(block)
                except BaseException:
                    out.discard()
                    raise
                written.append(out.commit())
    except BaseException:
        for path in written:
            remove_file(path)
        raise
    return written


def sha256_file(path: Path) -> str:
    """Return the SHA-256 of a file's content, read in large blocks (not into memory)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
