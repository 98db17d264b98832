"""The transcript model every transcript format is rendered from.

A Cleanvoice result carries a transcript twice: ``transcription.paragraphs`` (text with
times) and ``transcription.transcription`` with ``words`` (one entry per word) and
``paragraphs`` (speaker turns: times and a label such as ``SPEAKER_01``, no text).
:func:`read_transcript` joins them: each word gets the speaker of the turn it overlaps
most, and each text paragraph the speaker of its words. A text paragraph whose words
belong to more than one speaker is split where the speaker changes, its parts then
written from the words. Entries with missing or invalid times are skipped; if nothing
usable is left, ValueError says so.

Speaker labels become names by :func:`speaker_name`: ``SPEAKER_00`` is the first name of
the folder's ``speakers`` setting, else the first track of a multi-track recording,
else "Speaker 1".
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cvsyncd.outbox.render.common import clean_text, items, mapping, seconds, to_ms

_LABEL = re.compile(r"SPEAKER_(\d+)")
PARAGRAPH_PAUSE_MS = 2000  # without any paragraphs, a silence this long starts a new one


@dataclass(frozen=True)
class Word:
    start: int  # milliseconds
    end: int
    text: str
    speaker: str | None  # the label, e.g. "SPEAKER_00"


@dataclass(frozen=True)
class Paragraph:
    start: int
    end: int
    text: str
    speaker: str | None


@dataclass(frozen=True)
class Transcript:
    words: tuple[Word, ...]
    paragraphs: tuple[Paragraph, ...]
    names: Mapping[str, str]  # label → display name, in order of first appearance

    def name(self, label: str | None) -> str | None:
        return self.names.get(label) if label is not None else None


@dataclass(frozen=True)
class _Turn:
    start: int
    end: int
    speaker: str


def has_transcript(result: Mapping[str, Any]) -> bool:
    """Whether ``result`` holds a transcript with at least one paragraph or word."""
    transcription = mapping(result.get("transcription"))
    if transcription is None:
        return False
    detail = mapping(transcription.get("transcription")) or {}
    return bool(_texts(transcription.get("paragraphs")) or _words(detail.get("words"), _Turns(())))


def speech_end(result: Mapping[str, Any]) -> int | None:
    """Where the transcript's last word or paragraph ends (ms), or None without one."""
    transcription = mapping(result.get("transcription"))
    if transcription is None:
        return None
    detail = mapping(transcription.get("transcription")) or {}
    ends = [
        span[1]
        for entry in (*items(transcription.get("paragraphs")), *items(detail.get("words")))
        if (span := _interval(entry)) is not None
    ]
    return max(ends) if ends and max(ends) > 0 else None


def read_transcript(
    result: Mapping[str, Any], speakers: Sequence[str] = (), track_names: Sequence[str] = ()
) -> Transcript:
    """Given a result, return its transcript with speakers named. Raise ValueError if the
    result has no transcript or none of its entries is usable."""
    transcription = mapping(result.get("transcription"))
    if transcription is None:
        raise ValueError("the result has no transcript (was transcription asked for?)")
    detail = mapping(transcription.get("transcription")) or {}
    turns = _Turns(detail.get("paragraphs"))
    words = _words(detail.get("words"), turns)
    texts = _texts(transcription.get("paragraphs"))
    if not words and not texts:
        raise ValueError("the transcript has no usable paragraphs or words")
    if texts:
        paragraphs = _split_by_speaker(texts, words, turns)
        if not words:
            words = _words_from_paragraphs(paragraphs)
    else:
        paragraphs = _paragraphs_from_words(words)
    first_seen: dict[str, int] = {}
    spoken: list[Paragraph | Word] = [*paragraphs, *words]
    for item in spoken:
        if item.speaker is not None:
            first_seen[item.speaker] = min(item.start, first_seen.get(item.speaker, item.start))
    labels = sorted(first_seen, key=lambda label: (first_seen[label], label))
    names = {label: speaker_name(label, speakers, track_names) for label in labels}
    return Transcript(tuple(words), tuple(paragraphs), names)


def speaker_name(label: str, speakers: Sequence[str] = (), track_names: Sequence[str] = ()) -> str:
    """Return the display name for a speaker label (see the module docstring).

    A label not of the form ``SPEAKER_<n>`` is taken as a name already.
    """
    match = _LABEL.fullmatch(label)
    if match is None:
        return clean_text(label) or "Speaker"
    index = int(match.group(1))
    for names in (speakers, track_names):
        if index < len(names) and clean_text(names[index]):
            return clean_text(names[index])
    return f"Speaker {index + 1}"


def _interval(entry: Any) -> tuple[int, int] | None:
    if not isinstance(entry, Mapping):
        return None
    start, end = seconds(entry.get("start")), seconds(entry.get("end"))
    if start is None:
        return None
    first = to_ms(start)
    last = max(first, to_ms(end)) if end is not None else first
    return first, last


class _Turns:
    """Speaker turns, sorted, with what it takes to find the turns near a time quickly."""

    def __init__(self, value: Any):
        turns = []
        for entry in items(value):
            span = _interval(entry)
            label = clean_text(entry.get("speaker")) if span else ""
            if span and label:
                turns.append(_Turn(span[0], span[1], label))
        self.turns = sorted(turns, key=lambda t: (t.start, t.end))
        self.starts = [t.start for t in self.turns]
        # reach[i]: the index of the turn that ends last among turns[0..i]
        self.reach: list[int] = []
        for index, turn in enumerate(self.turns):
            latest = self.reach[-1] if self.reach else index
            self.reach.append(index if turn.end >= self.turns[latest].end else latest)

    def speaker_at(self, start: int, end: int) -> str | None:
        """The speaker of the turn that overlaps [start, end] most, else of the nearest turn."""
        if not self.turns:
            return None
        after = bisect.bisect_right(self.starts, end)  # turns from here on start later
        first = max(after - 1, 0)
        while first > 0 and self.turns[self.reach[first - 1]].end >= start:
            first -= 1  # turns before `first` all end before `start`
        candidates = list(range(first, min(after + 1, len(self.turns))))
        if first > 0:
            candidates.append(self.reach[first - 1])  # of those, the one ending last
        best: tuple[int, int, int] | None = None
        speaker = None
        for index in candidates:
            turn = self.turns[index]
            overlap = min(end, turn.end) - max(start, turn.start)
            distance = max(turn.start - end, start - turn.end, 0)
            key = (-max(overlap, 0), distance, index)
            if best is None or key < best:
                best, speaker = key, turn.speaker
        return speaker


def _words(value: Any, turns: _Turns) -> list[Word]:
    words = []
    for entry in items(value):
        span = _interval(entry)
        text = clean_text(entry.get("text")) if span else ""
        if span and text:
            words.append(Word(span[0], span[1], text, turns.speaker_at(*span)))
    return sorted(words, key=lambda w: (w.start, w.end))


def _texts(value: Any) -> list[tuple[int, int, str]]:
    texts = []
    for entry in items(value):
        span = _interval(entry)
        text = clean_text(entry.get("text")) if span else ""
        if span and text:
            texts.append((span[0], span[1], text))
    return sorted(texts, key=lambda t: (t[0], t[1]))


def _split_by_speaker(
    texts: Sequence[tuple[int, int, str]], words: Sequence[Word], turns: _Turns
) -> list[Paragraph]:
    paragraphs = []
    starts = [w.start for w in words]
    longest = max((w.end - w.start for w in words), default=0)
    for start, end, text in texts:
        near = words[bisect.bisect_left(starts, start - longest) : bisect.bisect_right(starts, end)]
        inside = [w for w in near if start <= (w.start + w.end) // 2 <= end]
        runs = _runs(inside)
        if len(runs) <= 1:
            speaker = runs[0][0].speaker if runs else turns.speaker_at(start, end)
            paragraphs.append(Paragraph(start, end, text, speaker))
            continue
        for run in runs:
            words_text = " ".join(w.text for w in run)
            paragraphs.append(Paragraph(run[0].start, run[-1].end, words_text, run[0].speaker))
    return paragraphs


def _runs(words: Sequence[Word]) -> list[list[Word]]:
    """Split words into runs of one speaker each."""
    runs: list[list[Word]] = []
    for word in words:
        if runs and runs[-1][-1].speaker == word.speaker:
            runs[-1].append(word)
        else:
            runs.append([word])
    return runs


def _paragraphs_from_words(words: Sequence[Word]) -> list[Paragraph]:
    """Without text paragraphs: one paragraph per speaker run, also split at long pauses."""
    groups: list[list[Word]] = []
    for word in words:
        last = groups[-1][-1] if groups else None
        if (
            last is not None
            and last.speaker == word.speaker
            and word.start - last.end < PARAGRAPH_PAUSE_MS
        ):
            groups[-1].append(word)
        else:
            groups.append([word])
    return [
        Paragraph(g[0].start, g[-1].end, " ".join(w.text for w in g), g[0].speaker) for g in groups
    ]


def _words_from_paragraphs(paragraphs: Sequence[Paragraph]) -> list[Word]:
    """Without word timings: spread each paragraph's words over its time by their length."""
    words = []
    for paragraph in paragraphs:
        tokens = paragraph.text.split()
        total = sum(len(t) + 1 for t in tokens)
        span = paragraph.end - paragraph.start
        done = 0
        for token in tokens:
            start = paragraph.start + span * done // total
            done += len(token) + 1
            end = paragraph.start + span * done // total
            words.append(Word(start, end, token, paragraph.speaker))
    return words
