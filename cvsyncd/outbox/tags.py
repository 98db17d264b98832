"""Writing the episode's title, description, show, artwork and chapters into the cleaned file.

A podcaster publishes the cleaned MP3 or M4A as it is, so what Cleanvoice found out about
the episode goes into the file itself, in the places podcast apps read:

- MP3: an ID3v2.4 tag — ``TIT2`` (title), a ``COMM`` comment and ``TDES`` (the episode
  description), ``TALB``/``TPE1`` (the show), ``APIC`` (the cover), one ``CHAP`` frame per
  chapter (with its ``TIT2``) and a top-level, ordered ``CTOC`` listing them;
- M4A (and MP4): iTunes atoms — ``©nam``, ``desc``/``ldes``, ``©alb``/``©ART``, ``covr`` —
  and a Nero ``chpl`` chapter list inside ``moov/udta``, which ffmpeg, mutagen and most
  players read.

Only the tag changes: the audio frames (the MP3 frames after the ID3 header, the M4A
``mdat`` payload) are left byte for byte as Cleanvoice sent them. The caller embeds into the
temp file before its atomic rename, so a crash never leaves a half-tagged output.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cvsyncd.outbox.render.common import clean_block, clean_text, mapping
from cvsyncd.outbox.render.summary import Chapter, read_chapters

EMBED_PARTS = ("chapters", "tags", "cover")
MP3_EXTENSIONS = frozenset({"mp3"})
MP4_EXTENSIONS = frozenset({"m4a", "m4b", "mp4", "m4v"})
COVER_NAMES = ("cover.jpg", "cover.jpeg", "cover.png")
MAX_COVER_BYTES = 10 * 1024**2  # larger artwork is refused: podcast apps want ≤ 512 KiB anyway
MAX_NERO_CHAPTERS = 255  # the chpl count is one byte
_NERO_UNITS = 10_000_000  # chpl start times are in 100 ns units


class CoverError(ValueError):
    """A cover image that cannot be embedded (its message names the file)."""


@dataclass(frozen=True)
class Cover:
    data: bytes
    mime: str  # image/jpeg or image/png


@dataclass(frozen=True)
class EpisodeTags:
    """What is written into one file; empty fields are left out."""

    title: str = ""
    description: str = ""
    show: str = ""
    chapters: tuple[Chapter, ...] = ()
    cover: Cover | None = None

    def __bool__(self) -> bool:
        return bool(self.title or self.description or self.show or self.chapters or self.cover)

    @property
    def parts(self) -> list[str]:
        """What this holds, in words for a log line."""
        found = [("title", self.title), ("description", self.description), ("show", self.show)]
        names = [name for name, value in found if value]
        if self.chapters:
            names.append(f"{len(self.chapters)} chapters")
        if self.cover:
            names.append("cover")
        return names


def can_embed(extension: str) -> bool:
    """Whether a file with this extension can carry the tags."""
    return extension.lower() in MP3_EXTENSIONS | MP4_EXTENSIONS


def episode_tags(
    result: Mapping[str, Any],
    embed: Iterable[str],
    show: str | None = None,
    cover: Cover | None = None,
) -> EpisodeTags:
    """Given a finished edit's result and the folder's ``embed`` choice, return the tags."""
    wanted = set(embed)
    summary = mapping(result.get("summarization")) or {}
    title = description = ""
    if "tags" in wanted:
        title = clean_text(summary.get("title"))
        for key in ("episode_description", "summary_of_summary", "summary"):
            description = clean_block(summary.get(key))
            if description:
                break
    chapters = tuple(read_chapters(result)) if "chapters" in wanted else ()
    return EpisodeTags(
        title=title,
        description=description,
        show=(show or "") if "tags" in wanted else "",
        chapters=chapters,
        cover=cover if "cover" in wanted else None,
    )


def find_cover(configured: Path | None, places: Sequence[Path]) -> tuple[Path, bool] | None:
    """The cover to embed and whether it was found in an inbox: the folder's ``cover``
    setting, else the first ``cover.jpg`` or ``cover.png`` in ``places`` (the input's own
    folder first, then the inbox root)."""
    if configured is not None:
        return configured, False
    for place in places:
        for name in COVER_NAMES:
            candidate = place / name
            if os.path.lexists(candidate):
                return candidate, True
    return None


def read_cover(path: Path, *, in_inbox: bool = False) -> Cover:
    """Read a JPEG or PNG cover, bounded. Raise CoverError if it is neither or too large.

    A cover found in an inbox is read only if it is a regular file, not through a link (an
    inbox is shared with other programs and people); a configured one may be a link.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | (os.O_NOFOLLOW if in_inbox else 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise CoverError(f"cannot read the cover {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as source:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CoverError(f"the cover {path} is not a regular file")
        data = source.read(MAX_COVER_BYTES + 1)
    if len(data) > MAX_COVER_BYTES:
        raise CoverError(
            f"the cover {path} is larger than {MAX_COVER_BYTES // 1024**2} MiB; "
            "use a JPEG or PNG of at most 3000 x 3000 pixels"
        )
    if data.startswith(b"\xff\xd8\xff"):
        return Cover(data, "image/jpeg")
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return Cover(data, "image/png")
    raise CoverError(f"the cover {path} is neither a JPEG nor a PNG image")


def embed_tags(path: Path, extension: str, tags: EpisodeTags) -> bool:
    """Write ``tags`` into the media file at ``path`` (in place). Return whether it did.

    Raise ValueError if the file cannot be parsed as the format its extension names (it
    is then left unchanged); OSError for an I/O problem (then the file must be discarded).
    """
    extension = extension.lower()
    if not tags or not can_embed(extension):
        return False
    if extension in MP3_EXTENSIONS:
        _embed_id3(path, tags)
    else:
        _embed_mp4(path, tags)
    return True


# -- MP3: ID3v2.4 -------------------------------------------------------------------------

_ID3_OWNED = ("TIT2", "TALB", "TPE1", "TDES", "COMM", "APIC", "CHAP", "CTOC")


def _audio_length_ms(path: Path) -> int | None:
    import mutagen

    try:
        audio = mutagen.File(path)
    except Exception:  # mutagen raises many kinds for a frame it cannot read
        return None
    length = getattr(getattr(audio, "info", None), "length", None)
    return int(length * 1000) if isinstance(length, int | float) and length > 0 else None


def _chapter_ends(chapters: Sequence[Chapter], length_ms: int | None) -> list[int]:
    """Every chapter's end: the next start, the end of the audio for the last one."""
    ends = []
    for index, chapter in enumerate(chapters):
        if index + 1 < len(chapters):
            end = chapters[index + 1].start
        else:
            end = chapter.end or length_ms or chapter.start
            if length_ms and end > length_ms:
                end = max(length_ms, chapter.start)
        ends.append(max(end, chapter.start))
    return ends


def _embed_id3(path: Path, tags: EpisodeTags) -> None:
    from mutagen.id3 import (
        APIC,
        CHAP,
        COMM,
        CTOC,
        ID3,
        TALB,
        TDES,
        TIT2,
        TPE1,
        CTOCFlags,
        ID3NoHeaderError,
        PictureType,
    )
    from mutagen.mp3 import MP3, HeaderNotFoundError

    try:
        MP3(path)  # refuse a file that is not MPEG audio before touching it
    except HeaderNotFoundError as exc:
        raise ValueError(f"not an MP3 file: {exc}") from None
    try:
        id3 = ID3(path)
    except ID3NoHeaderError:
        id3 = ID3()
    for frame in _ID3_OWNED:
        id3.delall(frame)
    if tags.title:
        id3.add(TIT2(encoding=3, text=[tags.title]))
    if tags.description:
        id3.add(COMM(encoding=3, lang="XXX", desc="", text=[tags.description]))
        id3.add(TDES(encoding=3, text=[tags.description]))
    if tags.show:
        id3.add(TALB(encoding=3, text=[tags.show]))
        id3.add(TPE1(encoding=3, text=[tags.show]))
    if tags.cover:
        id3.add(
            APIC(
                encoding=3,
                mime=tags.cover.mime,
                type=PictureType.COVER_FRONT,
                desc="Cover",
                data=tags.cover.data,
            )
        )
    if tags.chapters:
        ends = _chapter_ends(tags.chapters, _audio_length_ms(path))
        ids = [f"chp{index}" for index in range(len(tags.chapters))]
        id3.add(
            CTOC(
                element_id="toc",
                flags=CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED,
                child_element_ids=ids,
                sub_frames=[TIT2(encoding=3, text=["Chapters"])],
            )
        )
        for element_id, chapter, end in zip(ids, tags.chapters, ends, strict=True):
            id3.add(
                CHAP(
                    element_id=element_id,
                    start_time=chapter.start,
                    end_time=end,
                    start_offset=0xFFFFFFFF,  # "use the times", as the spec says
                    end_offset=0xFFFFFFFF,
                    sub_frames=[TIT2(encoding=3, text=[chapter.title])],
                )
            )
    id3.save(path, v2_version=4)


# -- M4A / MP4: iTunes atoms and Nero chapters ----------------------------------------------


def _embed_mp4(path: Path, tags: EpisodeTags) -> None:
    from mutagen.mp4 import MP4, MP4Cover

    try:
        media = MP4(path)
    except OSError:
        raise
    except Exception as exc:  # a broken MP4 raises many kinds
        raise ValueError(f"not an MP4/M4A file: {exc}") from None
    if media.tags is None:
        media.add_tags()
    assert media.tags is not None
    for key in ("\xa9nam", "desc", "ldes", "\xa9alb", "\xa9ART", "covr"):
        media.tags.pop(key, None)
    if tags.title:
        media.tags["\xa9nam"] = [tags.title]
    if tags.description:
        media.tags["desc"] = [tags.description[:255]]  # desc is the short form
        media.tags["ldes"] = [tags.description]
    if tags.show:
        media.tags["\xa9alb"] = [tags.show]
        media.tags["\xa9ART"] = [tags.show]
    if tags.cover:
        kind = MP4Cover.FORMAT_PNG if tags.cover.mime == "image/png" else MP4Cover.FORMAT_JPEG
        media.tags["covr"] = [MP4Cover(tags.cover.data, imageformat=kind)]
    media.save()
    with open(path, "r+b") as fileobj:
        _write_nero_chapters(fileobj, tags.chapters[:MAX_NERO_CHAPTERS])


def _nero_chapter_list(chapters: Sequence[Chapter]) -> bytes:
    """A ``chpl`` atom: version 1, flags, reserved, count, then (start, title) pairs."""
    body = bytearray(struct.pack(">B3xIB", 1, 0, len(chapters)))
    for chapter in chapters:
        title = chapter.title.encode("utf-8")[:255].decode("utf-8", "ignore").encode("utf-8")
        start = chapter.start * (_NERO_UNITS // 1000)
        body += struct.pack(">QB", start, len(title)) + title
    return struct.pack(">I4s", 8 + len(body), b"chpl") + bytes(body)


def _write_nero_chapters(fileobj: BinaryIO, chapters: Sequence[Chapter]) -> None:
    """Replace the ``moov/udta/chpl`` atom (mutagen has just made sure ``udta`` exists).

    The moov box and its udta grow or shrink; when the media data lies behind the moov box,
    every chunk offset (``stco``, ``co64``) and fragment base offset (``tfhd``) behind the
    change moves by the same amount, as mutagen does for its own tag.
    """
    from mutagen._util import insert_bytes, resize_bytes
    from mutagen.mp4 import Atoms

    atoms = Atoms(fileobj)
    if any(atom.name == b"moof" for atom in atoms.atoms):
        return  # a fragmented file: its offsets are per fragment; chapters are left out
    try:
        path = atoms.path(b"moov", b"udta")
    except KeyError:
        if not chapters:
            return
        raise ValueError("the M4A file has no moov/udta box after tagging") from None
    udta = path[-1]
    old = next((child for child in udta.children or [] if child.name == b"chpl"), None)
    new = _nero_chapter_list(chapters) if chapters else b""
    if old is not None:
        offset, old_size = old.offset, old.length
        resize_bytes(fileobj, old_size, len(new), offset)
    else:
        if not new:
            return
        offset, old_size = udta.offset + udta.length, 0
        insert_bytes(fileobj, len(new), offset)
    fileobj.seek(offset)
    fileobj.write(new)
    delta = len(new) - old_size
    if delta:
        _grow_parents(fileobj, path, delta)
        _move_chunk_offsets(fileobj, atoms, delta, offset)


def _grow_parents(fileobj: BinaryIO, path: Sequence[Any], delta: int) -> None:
    for atom in path:
        fileobj.seek(atom.offset)
        size = struct.unpack(">I", fileobj.read(4))[0]
        if size == 1:  # 64-bit size after the name
            fileobj.seek(atom.offset + 8)
            size = struct.unpack(">Q", fileobj.read(8))[0]
            fileobj.seek(atom.offset + 8)
            fileobj.write(struct.pack(">Q", size + delta))
        else:
            fileobj.seek(atom.offset)
            fileobj.write(struct.pack(">I", size + delta))


def _move_chunk_offsets(fileobj: BinaryIO, atoms: Any, delta: int, changed_at: int) -> None:
    """Shift every chunk offset that points behind ``changed_at`` by ``delta``."""
    moov = atoms.path(b"moov")[-1]
    for atom in moov.findall(b"stco", True):
        _shift_table(fileobj, atom, delta, changed_at, ">I")
    for atom in moov.findall(b"co64", True):
        _shift_table(fileobj, atom, delta, changed_at, ">Q")


def _shift_table(fileobj: BinaryIO, atom: Any, delta: int, changed_at: int, fmt: str) -> None:
    # the atom was found before the change: where it lies now depends on the change too
    start = atom.offset + (delta if atom.offset >= changed_at else 0)
    width = struct.calcsize(fmt)
    fileobj.seek(start + 12)  # size, name, version and flags
    count = struct.unpack(">I", fileobj.read(4))[0]
    data = bytearray(fileobj.read(count * width))
    for index in range(count):
        (value,) = struct.unpack_from(fmt, data, index * width)
        if value >= changed_at:
            struct.pack_into(fmt, data, index * width, value + delta)
    fileobj.seek(start + 16)
    fileobj.write(bytes(data))
