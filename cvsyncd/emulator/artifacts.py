"""Result files on disk: the "cleaned" media, the multi-track ZIP, the mix, marker files.

The emulator does no audio processing: a cleaned file holds exactly the uploaded bytes, so
a test can compare them. Only the multi-track mix is computed for real (a 16-bit PCM
average) when every track is a WAV of the same format. Every file is written under a
temporary name and renamed into place, so a download never sees half a file.
"""

from __future__ import annotations

import os
import shutil
import sys
import wave
import zipfile
from array import array
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from itertools import zip_longest
from pathlib import Path

MIX_FRAMES = 16384  # frames mixed per step: keeps memory flat for long tracks


def _partial(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def place_copy(source: Path, target: Path) -> None:
    """Make ``target`` hold the bytes of ``source``.

    A hard link is instant and takes no space; it stays valid when the upload is replaced
    later, because a new upload is renamed over the old name rather than written into it.
    """
    partial = _partial(target)
    partial.unlink(missing_ok=True)
    try:
        os.link(source, partial)
    except OSError:
        shutil.copyfile(source, partial)
    os.replace(partial, target)


def write_text(target: Path, text: str) -> None:
    partial = _partial(target)
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, target)


def unique_names(names: Iterable[str]) -> list[str]:
    """Return ``names`` with repeats made unique (``a.wav``, ``a-2.wav``), order kept."""
    seen: set[str] = set()
    result = []
    for name in names:
        stem, dot, ext = name.rpartition(".") if "." in name else (name, "", "")
        candidate, number = name, 1
        while candidate in seen:
            number += 1
            candidate = f"{stem}-{number}{dot}{ext}"
        seen.add(candidate)
        result.append(candidate)
    return result


def write_zip(members: Sequence[tuple[str, Path]], target: Path) -> None:
    """Write a ZIP holding each ``(name, path)``; stored uncompressed, as audio is."""
    partial = _partial(target)
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, path in members:
            archive.write(path, arcname=name)
    os.replace(partial, target)


def _pcm16_format(path: Path) -> tuple[int, int] | None:
    """Return (channels, frame rate) of a 16-bit PCM WAV file, or None for anything else."""
    try:
        with wave.open(str(path), "rb") as reader:
            if reader.getsampwidth() != 2:
                return None
            return reader.getnchannels(), reader.getframerate()
    except (wave.Error, EOFError, OSError):
        return None


def _samples(frames: bytes) -> array[int]:
    samples = array("h")
    samples.frombytes(frames[: len(frames) - len(frames) % 2])
    if sys.byteorder == "big":  # WAV is little-endian
        samples.byteswap()
    return samples


def _mix_pcm16(paths: Sequence[Path], channels: int, rate: int, target: Path) -> None:
    with ExitStack() as stack:
        readers = [stack.enter_context(wave.open(str(path), "rb")) for path in paths]
        writer = stack.enter_context(wave.open(str(target), "wb"))
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        count = len(readers)
        while True:
            blocks = [_samples(reader.readframes(MIX_FRAMES)) for reader in readers]
            if not any(blocks):
                break
            # A track that ended early counts as silence for the rest of the mix.
            mixed = array("h", (int(sum(s) / count) for s in zip_longest(*blocks, fillvalue=0)))
            if sys.byteorder == "big":
                mixed.byteswap()
            writer.writeframes(mixed.tobytes())


def mixable(paths: Sequence[Path]) -> bool:
    """Return True if ``paths`` are 16-bit PCM WAV files of one format, which can be mixed."""
    formats = [_pcm16_format(path) for path in paths]
    return formats[0] is not None and all(other == formats[0] for other in formats)


def write_mix(paths: Sequence[Path], target: Path) -> bool:
    """Write the mix of ``paths`` to ``target``; return True if it is a real PCM mix.

    Without a decoder only 16-bit PCM WAV tracks of one format can be mixed; anything else
    gets a copy of the first track, which is enough to exercise a client.
    """
    first = _pcm16_format(paths[0])
    if first is None or not mixable(paths):
        place_copy(paths[0], target)
        return False
    channels, rate = first
    partial = _partial(target)
    _mix_pcm16(paths, channels, rate, partial)
    os.replace(partial, target)
    return True
