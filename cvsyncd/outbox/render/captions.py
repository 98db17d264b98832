"""Subtitles from word timings: SubRip (``.srt``) and WebVTT (``.vtt``).

Cues follow the common subtitle guidelines (Netflix, BBC): at most two lines of at most
42 characters, shown 1 to 7 seconds, never overlapping, never spanning a change of
speaker. :func:`make_cues` builds them in three steps:

1. split the words into *phrases* that no cue may cross: a new speaker, a pause of
   ``PAUSE_MS`` or more, the end of a sentence;
2. cut each phrase into as few cues as fit, choosing among the possible cuts the one
   that gives cues of even length and breaks after punctuation rather than after "the"
   (a small dynamic program over the phrase's words);
3. join a cue that is too short to read into the next one of the same speaker where the
   two fit together, then fix the times: a cue stays at least 1 s on screen unless the
   next one starts sooner, and ends before the next one starts.

A single word longer than a line (a URL) gets a line of its own, the only case where a
line exceeds 42 characters. Following the Podcasting 2.0 transcript guidelines, an SRT
cue that starts a new speaker's turn begins with "Name: " when the transcript has more
than one speaker; a VTT cue carries the speaker in a ``<v Name>`` voice tag.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cvsyncd.outbox.render.common import hms_ms
from cvsyncd.outbox.render.transcript import Transcript, Word

MAX_LINE = 42
MAX_LINES = 2
MIN_DURATION_MS = 1000
MAX_DURATION_MS = 7000
PAUSE_MS = 1000  # a silence this long ends a cue
# closing quotes and brackets, then the punctuation that ends a sentence or a clause (with
# the ideographic and full-width forms), written as escapes so that no look-alike hides
_CLOSERS = "\"')\\]\u201d\u2019\u00bb"
SENTENCE_END = re.compile(f"[.!?\u2026\u3002\uff01\uff1f][{_CLOSERS}]*$")
CLAUSE_END = re.compile(f"[,;:\u2014\u2013\u3001\uff0c\uff1b\uff1a][{_CLOSERS}]*$")
# a line or cue should not end on one of these (English; harmless for other languages)
_WEAK_WORDS = (
    "a an the and or but of to in on at for with from by as that this my your our their "
    "his her its is are was were i we you he she they"
)
WEAK_ENDINGS = frozenset(_WEAK_WORDS.split())


@dataclass(frozen=True)
class Cue:
    start: int  # milliseconds
    end: int
    lines: tuple[str, ...]
    speaker: str | None  # the label
    turn_start: bool  # the first cue of a speaker's turn


def make_cues(transcript: Transcript, *, prefixes: Mapping[str, str] | None = None) -> list[Cue]:
    """Return the cues for a transcript's words. ``prefixes`` maps a speaker label to the
    text that starts the first cue of each of that speaker's turns (e.g. ``"Ana:"``)."""
    cues: list[Cue] = []
    previous_speaker: str | None = None
    for phrase in _phrases(transcript.words):
        speaker = phrase[0].speaker
        turn_start = not cues or speaker != previous_speaker
        tokens = [w.text for w in phrase]
        prefix = (prefixes or {}).get(speaker or "") if turn_start else None
        if prefix:
            tokens[0] = f"{prefix} {tokens[0]}"
        for first, last in _cut(phrase, tokens):
            lines = wrap(tokens[first:last])
            assert lines is not None  # _cut only returns cuts that wrap
            cues.append(
                Cue(phrase[first].start, phrase[last - 1].end, tuple(lines), speaker, turn_start)
            )
            turn_start = False
        previous_speaker = speaker
    return _fix_times(_join_short(cues))


def _phrases(words: Sequence[Word]) -> list[list[Word]]:
    phrases: list[list[Word]] = []
    for word in words:
        last = phrases[-1][-1] if phrases else None
        if (
            last is None
            or word.speaker != last.speaker
            or word.start - last.end >= PAUSE_MS
            or SENTENCE_END.search(last.text)
        ):
            phrases.append([word])
        else:
            phrases[-1].append(word)
    return phrases


def wrap(tokens: Sequence[str]) -> list[str] | None:
    """Return ``tokens`` as one line or two balanced lines of at most 42 characters, or
    None if they do not fit. One token alone always fits (it may be longer than a line)."""
    lengths = [len(token) for token in tokens]
    total = sum(lengths) + len(tokens) - 1  # joined by single spaces
    if total <= MAX_LINE or len(tokens) == 1:
        return [" ".join(tokens)]
    best: tuple[float, int] | None = None
    top = -1
    for split in range(1, len(tokens)):
        top += lengths[split - 1] + 1  # the length of " ".join(tokens[:split])
        if top > MAX_LINE:
            break  # the top line only grows from here
        bottom = total - top - 1
        if bottom > MAX_LINE:
            continue
        score = abs(top - bottom) + _break_penalty(tokens[split - 1]) / 4
        if best is None or (score, split) < best:
            best = (score, split)
    if best is None:
        return None
    split = best[1]
    return [" ".join(tokens[:split]), " ".join(tokens[split:])]


def _fits(lengths: Sequence[int], first: int, last: int, total: int) -> bool:
    """Whether the tokens of ``lengths[first:last]`` (``total`` characters joined by
    spaces) fit on one line or two: as ``wrap`` would find, without building any text.
    The longest top line that fits leaves the shortest bottom line."""
    if total <= MAX_LINE:
        return True
    top = -1
    for index in range(first, last - 1):
        if top + lengths[index] + 1 > MAX_LINE:
            break
        top += lengths[index] + 1
    return top > 0 and total - top - 1 <= MAX_LINE


@functools.lru_cache(maxsize=4096)
def _break_penalty(token: str) -> float:
    """How bad it is to break a line or a cue after ``token``."""
    if SENTENCE_END.search(token):
        return -20
    if CLAUSE_END.search(token):
        return -10
    if token.lower().strip(_CLOSERS) in WEAK_ENDINGS:
        return 30
    return 10


def _cut(phrase: Sequence[Word], tokens: Sequence[str]) -> list[tuple[int, int]]:
    """Cut one phrase into cues: ``(first, last)`` word ranges, as few and as even as may be."""
    count = len(tokens)
    capacity = MAX_LINE * MAX_LINES
    lengths = [len(token) for token in tokens]
    best: list[tuple[float, int]] = [(0.0, 0)] + [(float("inf"), 0)] * count
    for last in range(1, count + 1):
        length = -1
        for first in range(last - 1, -1, -1):
            length += lengths[first] + 1
            single = first == last - 1
            if not single and (
                length > capacity or phrase[last - 1].end - phrase[first].start > MAX_DURATION_MS
            ):
                break
            if not single and not _fits(lengths, first, last, length):
                continue
            cost = 100 + (capacity - min(length, capacity)) ** 2 / 50
            if last < count:
                cost += _break_penalty(tokens[last - 1]) + 10
            if phrase[last - 1].end - phrase[first].start < MIN_DURATION_MS:
                cost += 40
            total = best[first][0] + cost
            if total < best[last][0]:
                best[last] = (total, first)
    cuts = []
    last = count
    while last > 0:
        first = best[last][1]
        cuts.append((first, last))
        last = first
    return cuts[::-1]


def _join_short(cues: list[Cue]) -> list[Cue]:
    """Join a cue shown less than the minimum time to a neighbour of the same turn: to the
    next one, or, when it ends its turn, to the one before."""
    joined: list[Cue] = []
    for index, cue in enumerate(cues):
        last = joined[-1] if joined else None
        following = cues[index + 1] if index + 1 < len(cues) else None
        ends_turn = following is None or following.turn_start
        if (
            last is not None
            and not cue.turn_start
            and (_short(last) or (_short(cue) and ends_turn))
            and cue.start - last.end < PAUSE_MS
            and cue.end - last.start <= MAX_DURATION_MS
        ):
            lines = _join_lines(last.lines, cue.lines)
            if lines is not None:
                joined[-1] = Cue(last.start, cue.end, lines, last.speaker, last.turn_start)
                continue
        joined.append(cue)
    return joined


def _short(cue: Cue) -> bool:
    return cue.end - cue.start < MIN_DURATION_MS


def _join_lines(first: Sequence[str], second: Sequence[str]) -> tuple[str, ...] | None:
    if len(first) == 1 and len(second) == 1:
        return (first[0], second[0])  # one sentence a line reads best
    lines = wrap(" ".join((*first, *second)).split(" "))
    return tuple(lines) if lines is not None else None


def _fix_times(cues: list[Cue]) -> list[Cue]:
    """Make every cue last 1 to 7 s where it can, and never overlap the next one."""
    fixed: list[Cue] = []
    for index, cue in enumerate(cues):
        start = max(cue.start, fixed[-1].end) if fixed else cue.start
        end = min(max(cue.end, start + MIN_DURATION_MS), start + MAX_DURATION_MS)
        if index + 1 < len(cues):
            following = cues[index + 1].start
            if following > start:
                end = min(end, following)
        end = max(end, start + 1)  # overlapping words (crosstalk): keep the cue, 1 ms long
        fixed.append(Cue(start, end, cue.lines, cue.speaker, cue.turn_start))
    return fixed


def render_srt(transcript: Transcript) -> str:
    """Return a SubRip file: numbered cues, ``HH:MM:SS,mmm`` times."""
    prefixes = {label: f"{name}:" for label, name in transcript.names.items()}
    cues = make_cues(transcript, prefixes=prefixes if len(prefixes) > 1 else None)
    blocks = []
    for number, cue in enumerate(cues, 1):
        times = f"{hms_ms(cue.start, ',')} --> {hms_ms(cue.end, ',')}"
        text = "\n".join(line.replace("-->", "->") for line in cue.lines)
        blocks.append(f"{number}\n{times}\n{text}\n")
    return "\n".join(blocks)


def render_vtt(transcript: Transcript, title: str = "") -> str:
    """Return a WebVTT file; cues of a known speaker start with a ``<v Name>`` voice tag."""
    header = "WEBVTT"
    if title:
        header += " - " + title.replace("-->", "->")
    blocks = [header + "\n"]
    for cue in make_cues(transcript):
        times = f"{hms_ms(cue.start)} --> {hms_ms(cue.end)}"
        text = "\n".join(html.escape(line, quote=False) for line in cue.lines)
        name = transcript.name(cue.speaker)
        if name:
            text = f"<v {html.escape(name, quote=False)}>{text}"
        blocks.append(f"{times}\n{text}\n")
    return "\n".join(blocks)
