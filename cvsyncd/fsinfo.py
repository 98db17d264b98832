"""What kind of filesystem a path lives on (local disk or a network/FUSE share).

SQLite must not live on a network filesystem, and inotify sees nothing that another
machine writes into a share: both decisions need the filesystem type. On Linux it comes
from ``/proc/self/mountinfo``; elsewhere it is reported as "unknown" and treated as local.
"""

from __future__ import annotations

import os
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")

NETWORK_TYPES = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb",
        "smb3",
        "smbfs",
        "9p",
        "afs",
        "ceph",
        "coda",
        "davfs",
        "glusterfs",
        "lustre",
        "ncpfs",
        "fuse",
        "fuseblk",
        "sshfs",
        "gpfs",
        "beegfs",
    }
)


def _unescape(field: str) -> str:
    """Undo the octal escapes (``\\040`` for a space) of mountinfo fields."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[tuple[str, str]]:
    """Return (mount point, filesystem type) pairs from the text of a mountinfo file."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if len(fields) <= sep + 1 or len(fields) < 5:
            continue
        mounts.append((_unescape(fields[4]), fields[sep + 1]))
    return mounts


def filesystem_type(path: Path, mountinfo: str | None = None) -> str:
    """Return the type of the filesystem holding ``path`` (e.g. "ext4", "nfs4", "unknown")."""
    if mountinfo is None:
        try:
            mountinfo = MOUNTINFO.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "unknown"
    target = os.path.realpath(path)
    best, best_type = "", "unknown"
    for mount_point, fstype in parse_mountinfo(mountinfo):
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, fstype
    return best_type


def is_network_filesystem(fstype: str) -> bool:
    """Whether a filesystem type is shared over a network or implemented in user space."""
    return fstype in NETWORK_TYPES or fstype.startswith("fuse.")
