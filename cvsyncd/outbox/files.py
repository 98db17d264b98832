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
import re
import secrets
import shutil
import stat
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


def aside_name(kind: str, name: str) -> str:
    """A hidden name for the file ``name`` set aside before its removal
    (``.cvsyncd-<kind>-<random>-<name>``, the name shortened to fit): one that a crash left
    behind is found again by the name of the file it was (see :func:`asides_of`)."""
    head = f"{TEMP_PREFIX}{kind}-{secrets.token_hex(6)}-"
    room = NAME_MAX - len(head.encode())
    return head + name.encode()[:room].decode("utf-8", "ignore")


def asides_of(directory: Path, kind: str, name: str) -> list[Path]:
    """The files of ``directory`` that :func:`aside_name` made for ``name``."""
    sample = aside_name(kind, name)
    tail = sample[len(TEMP_PREFIX) + len(kind) + 14 :]  # after "<kind>-<12 hex>-"
    pattern = re.compile(re.escape(f"{TEMP_PREFIX}{kind}-") + "[0-9a-f]{12}-" + re.escape(tail))
    with os.scandir(directory) as entries:
        return sorted(Path(e.path) for e in entries if pattern.fullmatch(e.name))


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
    """Move ``src`` to ``dest`` within one filesystem, durably, and return ``dest``; never
    overwrite.

    Across filesystems this raises OSError(EXDEV) and changes nothing: such a move is a
    copy, and a copy must be made from a descriptor opened without following links or
    blocking, then the source removed only if it is still the file copied — see
    :func:`copy_open_file` and :func:`remove_if_same`, which the caller (who knows which
    folder the source is in, and what it was) puts together.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        # fails if dest exists (no clobbering, unlike rename); a link is moved as a link
        os.link(src, dest, follow_symlinks=False)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise FileExistsError(errno.EEXIST, "destination exists", str(dest)) from None
        if exc.errno in (errno.EPERM, errno.ENOTSUP, errno.EMLINK):
            # no hard links here (FAT, some shares): rename, after a last existence check
            if os.path.lexists(dest):
                raise FileExistsError(errno.EEXIST, "destination exists", str(dest)) from None
            os.rename(src, dest)
            fsync_dir(dest.parent)
            fsync_dir(src.parent)
            return dest
        raise
    fsync_dir(dest.parent)
    os.unlink(src)
    fsync_dir(src.parent)
    return dest


def move_tree(src: Path, dest: Path) -> Path:
    """Move the folder ``src`` (a multi-track session) to ``dest`` with one rename; never
    overwrite. Across filesystems this raises OSError(EXDEV) and changes nothing (the
    caller then copies file by file, see :func:`move_file`)."""
    if os.path.lexists(dest):
        raise FileExistsError(errno.EEXIST, "destination exists", str(dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.rename(src, dest)
    fsync_dir(dest.parent)
    fsync_dir(src.parent)
    return dest


class SourceChanged(Exception):
    """The file being copied changed while it was read: the copy was not kept."""


def copy_open_file(source: IO[bytes], before: os.stat_result, dest: Path) -> os.stat_result:
    """Copy the open regular file ``source`` (whose ``fstat`` is ``before``) to ``dest``
    with the atomic protocol; never overwrite (FileExistsError). Return the source's fstat.

    Nothing is looked up by path: the content, the mode and the times all come from the
    descriptor. If the source's fstat differs after the copy (it was written to meanwhile)
    the copy is discarded and SourceChanged raised.
    """
    if not stat.S_ISREG(before.st_mode):
        raise SourceChanged(f"{dest.name}: only a regular file is copied")
    out = AtomicFile(dest, mode=stat.S_IMODE(before.st_mode))
    try:
        shutil.copyfileobj(source, out.file, COPY_BLOCK)
        after = os.fstat(source.fileno())
        if not _unchanged(before, after):
            raise SourceChanged(f"the file moved to {dest} changed while it was being copied")
        out.file.flush()  # the last write, then the times (a later write would change them)
        os.utime(out.file.fileno(), ns=(before.st_atime_ns, before.st_mtime_ns))
    except BaseException:
        out.discard()
        raise
    out.commit(overwrite=False)
    return after


def _unchanged(before: os.stat_result, after: os.stat_result) -> bool:
    """Whether two fstats of one open file show its content unchanged: the same inode,
    size and mtime, and the same change time unless only its links changed (a newer take
    renamed over it unlinks it, which changes its change time but not what was read)."""
    same = (before.st_dev, before.st_ino, before.st_size, before.st_mtime_ns) == (
        after.st_dev,
        after.st_ino,
        after.st_size,
        after.st_mtime_ns,
    )
    relinked = before.st_nlink != after.st_nlink
    return same and (relinked or before.st_ctime_ns == after.st_ctime_ns)


def remove_if_same(path: Path, copied: os.stat_result, kind: str = "remove") -> bool:
    """Remove ``path`` only if it is still the very file that was copied or checked
    (``copied`` is its fstat then); return whether it was removed. ``kind`` names the
    aside (see :func:`aside_name`).

    The entry is first renamed to a hidden name beside it, so what is compared is what
    would be removed: the same device, inode, size and mtime, a regular file. Anything
    else (a newer take renamed into place meanwhile, a link) is renamed back — under a
    free name if its own place was taken meanwhile — and never lost. Gone already: False.
    """
    aside = path.with_name(aside_name(kind, path.name))
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    try:
        st = os.lstat(aside)
        same = stat.S_ISREG(st.st_mode) and (
            st.st_dev,
            st.st_ino,
            st.st_size,
            st.st_mtime_ns,
        ) == (copied.st_dev, copied.st_ino, copied.st_size, copied.st_mtime_ns)
    except OSError:
        same = False
    if same:
        os.unlink(aside)
    else:
        os.rename(aside, free_name(path))
    fsync_dir(path.parent)
    return same


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
