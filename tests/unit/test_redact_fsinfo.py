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


# /proc/self/mountinfo inside a container (as Docker shows it on a NAS): the image's
# overlay root, /config and /data bind-mounted from local volumes, and shares the host
# mounted, bind-mounted further in. The kernel reports each bind mount's real type.
CONTAINER_MOUNTINFO = """\
812 640 0:58 / / rw,relatime master:300 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
813 812 0:61 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
820 812 0:31 /@syno/docker/cvsyncd /config rw,relatime - btrfs /dev/mapper/cachedev_0 rw
821 812 0:31 /volume1/podcast /data rw,relatime - btrfs /dev/mapper/cachedev_0 rw
822 821 0:70 / /data/share rw,relatime - cifs //studio-pc/takes rw,vers=3.0
823 812 0:71 /user/podcast /data2 rw,noatime - fuse.shfs shfs rw,user_id=0
824 812 0:72 /mnt/tank/media /data3 rw,noatime - zfs tank/media rw
825 812 0:73 / /data3/nfs rw,relatime - nfs4 nas2:/export rw,vers=4.2
"""


def test_inside_a_container_local_volumes_use_events_and_shares_are_polled() -> None:
    def network(path: str) -> bool:
        return is_network_filesystem(filesystem_type(Path(path), CONTAINER_MOUNTINFO))

    assert filesystem_type(Path("/data/inbox"), CONTAINER_MOUNTINFO) == "btrfs"  # Synology
    assert not network("/data/inbox")
    assert not network("/data3/inbox")  # TrueNAS: a ZFS dataset
    assert not network("/tmp/inbox")  # the container's own overlay: inotify works there
    assert network("/data/share/inbox")  # a Windows share the NAS mounted
    assert network("/data3/nfs/inbox")
    # Unraid's user shares (/mnt/user) are a FUSE filesystem: polled, to be safe;
    # docs/container.md says how to map a cache or disk path for events instead
    assert network("/data2/inbox")
