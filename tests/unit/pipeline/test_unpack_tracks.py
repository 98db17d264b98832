"""A session's cleaned tracks arrive as one ZIP archive: real archives on real folders,
damaged or too large as a hostile or unlucky server might send them."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cvsyncd.config import Folder
from cvsyncd.errors import JobError
from cvsyncd.jobs import InputFile, Job, Store
from cvsyncd.pipeline.delivery import unpack_tracks
from tests.conftest import one_folder_config

CONFIG = Path("/etc/cvsyncd/cvsyncd.toml")  # only named in messages


@pytest.fixture
def session(tmp_path: Path) -> Iterator[tuple[Folder, Job, Path]]:
    [folder] = one_folder_config(tmp_path).folders
    store = Store.open(tmp_path / "state")
    try:
        job = store.create_job(
            folder.key, "ep7", [InputFile("ep7/ana.wav", 1, 1, "ep7/ana.wav")], {}
        )
        assert job is not None
        tracks = tmp_path / "outbox" / "ep7"
        tracks.mkdir(parents=True)
        yield folder, job, tracks
    finally:
        store.close()


def make_archive(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_the_tracks_are_unpacked_under_their_own_names(
    session: tuple[Folder, Job, Path], tmp_path: Path
) -> None:
    folder, job, tracks = session
    archive = make_archive(tmp_path / "a.zip", {"x/ana.wav": b"A" * 1000, "ben.wav": b"B" * 10})
    written = unpack_tracks(job, folder, archive, tracks, 10_000, CONFIG)
    assert sorted(p.name for p in written) == ["ana.wav", "ben.wav"]
    assert (tracks / "ana.wav").read_bytes() == b"A" * 1000


def test_a_damaged_archive_is_fetched_again_and_leaves_no_half_of_it(
    session: tuple[Folder, Job, Path], tmp_path: Path
) -> None:
    folder, job, tracks = session
    archive = make_archive(tmp_path / "a.zip", {"ana.wav": b"A" * 1000, "ben.wav": b"B" * 1000})
    data = bytearray(archive.read_bytes())
    data[data.rindex(b"B" * 1000) + 500] ^= 0xFF  # one bit of ben's sound flipped in transit
    archive.write_bytes(bytes(data))
    with pytest.raises(JobError) as caught:
        unpack_tracks(job, folder, archive, tracks, 10_000, CONFIG)
    assert caught.value.retryable
    assert "damaged ZIP archive" in caught.value.message and str(tracks) in caught.value.message
    assert list(tracks.iterdir()) == []  # ana.wav, unpacked first, was taken back


def test_an_archive_cut_short_is_fetched_again(
    session: tuple[Folder, Job, Path], tmp_path: Path
) -> None:
    folder, job, tracks = session
    archive = make_archive(tmp_path / "a.zip", {"ana.wav": b"A" * 1000})
    archive.write_bytes(archive.read_bytes()[:600])
    with pytest.raises(JobError) as caught:
        unpack_tracks(job, folder, archive, tracks, 10_000, CONFIG)
    assert caught.value.retryable and "damaged ZIP archive" in caught.value.message


def test_an_archive_larger_than_allowed_fails_for_good_and_says_what_to_raise(
    session: tuple[Folder, Job, Path], tmp_path: Path
) -> None:
    folder, job, tracks = session
    archive = make_archive(tmp_path / "a.zip", {"ana.wav": b"A" * 6000, "ben.wav": b"B" * 6000})
    with pytest.raises(JobError) as caught:
        unpack_tracks(job, folder, archive, tracks, 10_000, CONFIG)
    message = caught.value.message
    assert not caught.value.retryable
    assert "max_download_gb" in message and f"cvsyncd retry -c {CONFIG} {job.id}" in message
    assert list(tracks.iterdir()) == []
