"""Tags written into the cleaned file, read back with independent readers: mutagen's own
parsing of the ID3 frames and MP4 atoms, and ffprobe. The audio itself must not change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mutagen.id3 import ID3
from mutagen.mp4 import MP4

from cvsyncd.outbox.tags import (
    EMBED_PARTS,
    CoverError,
    embed_tags,
    episode_tags,
    find_cover,
    read_cover,
)
from tests.media import (
    decoded_md5,
    make_audio,
    make_jpeg,
    mdat_payload,
    needs_ffmpeg,
    probe,
    without_id3v2,
)

pytestmark = pytest.mark.timeout(120)

RESULT = {
    "summarization": {
        "title": "Night shifts, ünïcode",
        "episode_description": "Ana and Ben on\nnight rotations.",
        "summary": "longer summary",
        # out of order on purpose: chapters are sorted by start
        "chapters": [
            {"start": 7.5, "title": "Rotations"},
            {"start": 0, "title": "Welcome"},
            {"start": 15.25, "title": "Goodbye"},
        ],
    }
}
TITLES = ["Welcome", "Rotations", "Goodbye"]
STARTS = [0, 7500, 15250]


def jpeg_cover(tmp_path: Path):  # type: ignore[no-untyped-def]
    return read_cover(make_jpeg(tmp_path / "cover.jpg"))


@needs_ffmpeg
def test_mp3_gets_an_id3v24_tag_with_chapters_and_a_table_of_contents(tmp_path: Path) -> None:
    original = make_audio(tmp_path / "in.mp3")
    path = tmp_path / "out.mp3"
    path.write_bytes(original.read_bytes())
    tags = episode_tags(RESULT, EMBED_PARTS, "The Night Desk", jpeg_cover(tmp_path))

    assert embed_tags(path, "mp3", tags)

    id3 = ID3(path)
    assert id3.version == (2, 4, 0)
    assert id3["TIT2"].text == ["Night shifts, ünïcode"]
    assert id3.getall("COMM")[0].text == ["Ana and Ben on\nnight rotations."]
    assert id3["TALB"].text == ["The Night Desk"] and id3["TPE1"].text == ["The Night Desk"]
    [apic] = id3.getall("APIC")
    assert apic.mime == "image/jpeg" and apic.data == tags.cover.data  # type: ignore[union-attr]
    [toc] = id3.getall("CTOC")
    assert toc.flags & 1 and toc.flags & 2  # top level, ordered
    chaps = {c.element_id: c for c in id3.getall("CHAP")}
    ordered = [chaps[i] for i in toc.child_element_ids]
    assert [c.sub_frames["TIT2"].text[0] for c in ordered] == TITLES
    assert [c.start_time for c in ordered] == STARTS
    # each chapter ends where the next begins; the last at the end of the audio (20 s)
    assert [c.end_time for c in ordered[:-1]] == STARTS[1:]
    assert 19_900 <= ordered[-1].end_time <= 20_100

    chapters = probe(path, "-show_chapters")["chapters"]
    assert sorted((round(float(c["start_time"]) * 1000), c["tags"]["title"]) for c in chapters) == (
        list(zip(STARTS, TITLES, strict=True))
    )
    # the audio frames are byte for byte what they were; only the tag differs
    assert without_id3v2(path.read_bytes()) == without_id3v2(original.read_bytes())
    assert decoded_md5(path) == decoded_md5(original)


@needs_ffmpeg
@pytest.mark.parametrize("faststart", [False, True], ids=["moov-last", "moov-first"])
def test_m4a_gets_itunes_atoms_and_nero_chapters(tmp_path: Path, faststart: bool) -> None:
    original = make_audio(tmp_path / "in.m4a", faststart=faststart)
    path = tmp_path / "out.m4a"
    path.write_bytes(original.read_bytes())
    tags = episode_tags(RESULT, EMBED_PARTS, "The Night Desk", jpeg_cover(tmp_path))

    assert embed_tags(path, "m4a", tags)

    media = MP4(path)
    assert media.tags is not None
    assert media.tags["\xa9nam"] == ["Night shifts, ünïcode"]
    assert media.tags["ldes"] == ["Ana and Ben on\nnight rotations."]
    assert media.tags["\xa9alb"] == ["The Night Desk"]
    assert bytes(media.tags["covr"][0]) == tags.cover.data
    assert media.chapters is not None
    assert [(round(c.start * 1000), c.title) for c in media.chapters] == list(
        zip(STARTS, TITLES, strict=True)
    )
    chapters = probe(path, "-show_chapters")["chapters"]
    assert [(round(float(c["start_time"]) * 1000), c["tags"]["title"]) for c in chapters] == list(
        zip(STARTS, TITLES, strict=True)
    )
    # moving the media data (moov first) must not break the chunk offsets: same samples
    assert mdat_payload(path) == mdat_payload(original)
    assert decoded_md5(path) == decoded_md5(original)


@needs_ffmpeg
@pytest.mark.parametrize("ext", ["mp3", "m4a"])
def test_embedding_again_replaces_rather_than_adds(tmp_path: Path, ext: str) -> None:
    path = make_audio(tmp_path / f"ep.{ext}")
    embed_tags(path, ext, episode_tags(RESULT, EMBED_PARTS, "First name"))
    once = path.stat().st_size
    embed_tags(path, ext, episode_tags(RESULT, EMBED_PARTS, "Other name"))
    if ext == "mp3":
        id3 = ID3(path)
        assert len(id3.getall("CHAP")) == 3 and len(id3.getall("CTOC")) == 1
        assert id3["TALB"].text == ["Other name"]
    else:
        media = MP4(path)
        assert media.chapters is not None and len(media.chapters) == 3
        assert media.tags is not None and media.tags["\xa9alb"] == ["Other name"]
    assert abs(path.stat().st_size - once) < 64  # not a second tag or chapter list
    assert len(probe(path, "-show_chapters")["chapters"]) == 3


@needs_ffmpeg
def test_embed_list_chooses_what_is_written(tmp_path: Path) -> None:
    path = make_audio(tmp_path / "ep.mp3")
    before = path.read_bytes()
    assert not embed_tags(path, "mp3", episode_tags(RESULT, [], "Show", jpeg_cover(tmp_path)))
    assert path.read_bytes() == before  # embed = [] leaves the file alone

    embed_tags(path, "mp3", episode_tags(RESULT, ["chapters"], "Show", jpeg_cover(tmp_path)))
    id3 = ID3(path)
    assert len(id3.getall("CHAP")) == 3
    assert not id3.getall("TALB") and not id3.getall("APIC") and not id3.getall("COMM")


def test_a_result_without_a_summary_gives_no_tags() -> None:
    tags = episode_tags({"summarization": []}, EMBED_PARTS, None)
    assert not tags and tags.parts == []


def test_a_file_that_is_not_what_its_extension_says_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "ep.mp3"
    path.write_bytes(b"RIFF not an mp3 at all" * 100)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="not an MP3"):
        embed_tags(path, "mp3", episode_tags(RESULT, EMBED_PARTS, "Show"))
    m4a = tmp_path / "ep.m4a"
    m4a.write_bytes(before)
    with pytest.raises(ValueError, match="not an MP4"):
        embed_tags(m4a, "m4a", episode_tags(RESULT, EMBED_PARTS, "Show"))
    assert path.read_bytes() == before and m4a.read_bytes() == before
    assert not embed_tags(tmp_path / "x.wav", "wav", episode_tags(RESULT, EMBED_PARTS, "S"))


def test_cover_is_found_beside_the_input_first_then_in_the_inbox(tmp_path: Path) -> None:
    show = tmp_path / "inbox" / "show"
    show.mkdir(parents=True)
    (tmp_path / "inbox" / "cover.png").write_bytes(b"\x89PNG\r\n\x1a\nrest")
    assert find_cover(None, [show, tmp_path / "inbox"]) == (tmp_path / "inbox" / "cover.png", True)
    (show / "cover.jpg").write_bytes(b"\xff\xd8\xffrest")
    assert find_cover(None, [show, tmp_path / "inbox"]) == (show / "cover.jpg", True)
    configured = tmp_path / "art.jpg"
    assert find_cover(configured, [show]) == (configured, False)
    assert read_cover(show / "cover.jpg").mime == "image/jpeg"


def test_covers_that_cannot_be_used_are_refused_with_the_file_named(tmp_path: Path) -> None:
    text = tmp_path / "cover.jpg"
    text.write_text("not an image")
    with pytest.raises(CoverError, match=r"cover\.jpg is neither a JPEG nor a PNG"):
        read_cover(text)
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"\xff\xd8\xffprivate")
    link = tmp_path / "linked" / "cover.jpg"
    link.parent.mkdir()
    os.symlink(secret, link)
    with pytest.raises(CoverError, match="cannot read the cover"):
        read_cover(link, in_inbox=True)  # an inbox link is not followed
    assert read_cover(link).data.startswith(b"\xff\xd8")  # a configured one may be a link
    fifo = tmp_path / "fifo" / "cover.png"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    with pytest.raises(CoverError, match="not a regular file"):
        read_cover(fifo, in_inbox=True)
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff\xd8\xff" + b"\0" * (11 * 1024**2))
    with pytest.raises(CoverError, match="larger than 10 MiB"):
        read_cover(big)
