"""Keeping secrets out of text, and telling local disks from network shares."""

from __future__ import annotations

from pathlib import Path

from cvsyncd.fsinfo import filesystem_type, is_network_filesystem, parse_mountinfo
from cvsyncd.redact import REDACTED, redact_url, register_secret, scrub, strip_query

SIGNED = (
    "https://bucket.example/uploads/abc/ep1.wav?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Signature=deadbeefcafe&X-Amz-Expires=3600"
)


def test_redact_url_drops_the_query() -> None:
    assert redact_url(SIGNED) == f"https://bucket.example/uploads/abc/ep1.wav?{REDACTED}"
    assert redact_url("https://api.example/v2/edits") == "https://api.example/v2/edits"
    assert strip_query(SIGNED) == "https://bucket.example/uploads/abc/ep1.wav"


def test_scrub_removes_signatures_and_keys_from_free_text() -> None:
    text = f'PUT "{SIGNED}" failed; key sk-live-123456 was sent'
    out = scrub(text, ["sk-live-123456"])
    assert "deadbeefcafe" not in out and "sk-live-123456" not in out
    assert "https://bucket.example/uploads/abc/ep1.wav" in out


def test_registered_secret_is_scrubbed_everywhere() -> None:
    register_secret("canary-key-0000")
    assert "canary-key-0000" not in scrub("error: canary-key-0000 rejected")


MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
40 27 0:40 / /srv/share rw,relatime shared:12 - nfs4 nas:/export rw,vers=4.2
41 27 0:41 / /mnt/smb\\040music rw - cifs //nas/music rw
42 27 0:42 / /mnt/cloud rw - fuse.rclone remote: rw
"""


def test_parse_mountinfo_handles_optional_fields_and_escapes() -> None:
    mounts = dict(parse_mountinfo(MOUNTINFO))
    assert mounts["/srv/share"] == "nfs4"
    assert mounts["/mnt/smb music"] == "cifs"


def test_filesystem_type_takes_the_longest_mount_prefix() -> None:
    assert filesystem_type(Path("/srv/share/inbox"), MOUNTINFO) == "nfs4"
    assert filesystem_type(Path("/srv/shared"), MOUNTINFO) == "ext4"
    assert filesystem_type(Path("/mnt/smb music/a"), MOUNTINFO) == "cifs"
    assert filesystem_type(Path("/mnt/cloud/x"), MOUNTINFO) == "fuse.rclone"


def test_network_types() -> None:
    for fstype in ("nfs", "nfs4", "cifs", "smb3", "fuse.rclone", "fuse.sshfs", "9p"):
        assert is_network_filesystem(fstype), fstype
    for fstype in ("ext4", "xfs", "btrfs", "zfs", "tmpfs", "apfs", "unknown"):
        assert not is_network_filesystem(fstype), fstype


def test_this_machine_reads_its_own_mount_table(tmp_path: Path) -> None:
    assert filesystem_type(tmp_path) != "unknown"


def test_a_short_secret_never_mangles_words() -> None:
    # shorter than a key can be: never taken for a secret, so no word becomes REDACTED
    register_secret("test")
    assert scrub("testing the test suite") == "testing the test suite"
    # a key is replaced where it stands alone, not inside a longer run of letters
    register_secret("k3y-0123456789")
    text = "key=k3y-0123456789, X-API-Key: k3y-0123456789; xk3y-0123456789x"
    assert scrub(text) == f"key={REDACTED}, X-API-Key: {REDACTED}; xk3y-0123456789x"
