"""Subtitles, read back by third-party parsers (``srt``, ``webvtt-py``), and the cue
builder's promises checked on realistic transcripts and on generated ones."""

from __future__ import annotations

import html
import io
import re
from datetime import timedelta

import pytest
import srt
import webvtt
from hypothesis import given, settings
from hypothesis import strategies as st

from cvsyncd.outbox.render import RenderContext, render
from cvsyncd.outbox.render.captions import (
    MAX_DURATION_MS,
    MAX_LINE,
    MIN_DURATION_MS,
    PAUSE_MS,
    make_cues,
)
from cvsyncd.outbox.render.transcript import Transcript, Word, read_transcript
from tests.unit.outbox.render.test_cases import Case, all_transcript_cases, multi_speaker_case

CASES = {case.name: case for case in all_transcript_cases()}
TOLERANCE = timedelta(milliseconds=1)


def seconds(value: timedelta) -> float:
    return value.total_seconds()


def vtt_seconds(stamp: str) -> float:
    hours, minutes, rest = stamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(rest)


def check_timing(spans: list[tuple[float, float]]) -> None:
    """Cues in order, none overlapping, each 1 to 7 s unless the next cue starts sooner."""
    for index, (start, end) in enumerate(spans):
        assert end > start
        assert end - start <= MAX_DURATION_MS / 1000 + 1e-6
        following = spans[index + 1][0] if index + 1 < len(spans) else None
        if following is not None:
            assert start <= following, "cues out of order"
            assert end <= following + 1e-6, "cues overlap"
        if end - start < MIN_DURATION_MS / 1000 - 1e-6:
            assert following is not None and abs(end - following) < 1e-6, (start, end)


@pytest.mark.parametrize("name", sorted(CASES))
def test_srt_reads_back_with_the_srt_library(name: str) -> None:
    case = CASES[name]
    text = render(".transcript.srt", case.result, case.context).decode("utf-8")
    subtitles = list(srt.parse(text))
    assert [s.index for s in subtitles] == list(range(1, len(subtitles) + 1))
    check_timing([(seconds(s.start), seconds(s.end)) for s in subtitles])
    for subtitle in subtitles:
        lines = subtitle.content.split("\n")
        assert 1 <= len(lines) <= 2
        assert all(0 < len(line) <= MAX_LINE for line in lines), lines
    # every word is said, once, in order (after the speaker names that open a turn)
    names = read_transcript(case.result, case.context.speakers, case.context.track_names).names
    said = []
    for subtitle in subtitles:
        content = subtitle.content.replace("\n", " ")
        for name in names.values():
            if len(names) > 1 and content.startswith(f"{name}: "):
                content = content.removeprefix(f"{name}: ")
        said += content.split()
    words = case.result["transcription"]["transcription"]["words"]
    assert said == [w["text"] for w in words]
    # srt's own composer writes what we wrote
    assert srt.compose(subtitles, reindex=False) == text + "\n"


@pytest.mark.parametrize("name", sorted(CASES))
def test_vtt_reads_back_with_webvtt_py(name: str) -> None:
    case = CASES[name]
    text = render(".transcript.vtt", case.result, case.context).decode("utf-8")
    captions = webvtt.from_buffer(io.StringIO(text)).captions
    assert captions
    check_timing([(vtt_seconds(c.start), vtt_seconds(c.end)) for c in captions])
    words = case.result["transcription"]["transcription"]["words"]
    visible = []
    for caption in captions:
        lines = [html.unescape(line) for line in caption.text.split("\n")]
        assert 1 <= len(lines) <= 2
        assert all(0 < len(line) <= MAX_LINE for line in lines), lines
        assert caption.voice, "every cue names its speaker"
        visible += " ".join(lines).split()
    assert visible == [w["text"] for w in words]


def test_vtt_escapes_markup_and_names_speakers() -> None:
    case = multi_speaker_case()
    text = render(".transcript.vtt", case.result, case.context).decode("utf-8")
    assert text.startswith("WEBVTT")
    assert "R&amp;D" in text and "x &lt; 3" in text and "&lt;laughs&gt;" in text
    captions = webvtt.from_buffer(io.StringIO(text)).captions
    assert {c.voice for c in captions} == {"Ana", "Ben", "Speaker 3"}


def test_srt_starts_each_turn_with_the_speaker_name() -> None:
    case = multi_speaker_case()
    subtitles = list(srt.parse(render(".transcript.srt", case.result, case.context).decode()))
    openers = [s.content.split(":")[0] for s in subtitles if re.match(r"^[\w ]+: ", s.content)]
    assert openers == ["Ana", "Ben", "Ana", "Ben", "Speaker 3", "Ben", "Ana"]


def test_no_cue_spans_a_change_of_speaker() -> None:
    for case in all_transcript_cases():
        transcript = read_transcript(case.result, case.context.speakers, case.context.track_names)
        for cue in make_cues(transcript):
            inside = [w for w in transcript.words if cue.start <= w.start and w.end <= cue.end]
            assert len({w.speaker for w in inside}) <= 1, cue


def test_a_single_speaker_srt_has_no_name_prefixes() -> None:
    case = CASES["emulator_7"]
    result = dict(case.result)
    detail = dict(result["transcription"]["transcription"])
    detail["paragraphs"] = [dict(p, speaker="SPEAKER_00") for p in detail["paragraphs"]]
    result["transcription"] = dict(result["transcription"], transcription=detail)
    text = render(".transcript.srt", result, RenderContext("s", "s", speakers=("Ana",))).decode()
    assert "Ana:" not in text
    assert (
        "<v Ana>" in render(".transcript.vtt", result, RenderContext("s", "s", ("Ana",))).decode()
    )


# -- the cue builder on generated transcripts --------------------------------------------

tokens = st.one_of(
    st.sampled_from(["the", "a", "night", "shift,", "really.", "why?", "R&D", "x<3", "café", "—"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzäé", min_size=1, max_size=14),
)


@st.composite
def transcripts(draw: st.DrawFn) -> Transcript:
    count = draw(st.integers(1, 120))
    clock = draw(st.integers(0, 5000))
    words = []
    for _ in range(count):
        text = draw(tokens)
        gap = draw(st.sampled_from([0, 30, 60, 120, 400, PAUSE_MS + 500, 8000]))
        length = draw(st.integers(1, 1500))
        speaker = draw(st.sampled_from(["SPEAKER_00", "SPEAKER_00", "SPEAKER_01", None]))
        clock += gap
        words.append(Word(clock, clock + length, text, speaker))
        clock += length
    names = {label: label.title() for label in {w.speaker for w in words} if label}
    return Transcript(tuple(words), (), names)


@settings(max_examples=300, deadline=None)
@given(transcripts())
def test_cues_keep_every_promise(transcript: Transcript) -> None:
    cues = make_cues(transcript, prefixes={"SPEAKER_00": "Speaker_00:"})
    spans = [(c.start / 1000, c.end / 1000) for c in cues]
    check_timing(spans)
    said = []
    for cue in cues:
        assert 1 <= len(cue.lines) <= 2
        for line in cue.lines:
            # only a single word longer than a line may exceed it
            assert len(line) <= MAX_LINE or (len(cue.lines) == 1 and " " not in line.strip())
        said += " ".join(cue.lines).split()
    said = [t for t in said if t != "Speaker_00:"]
    assert said == [w.text for w in transcript.words]


def test_long_sentences_are_cut_into_balanced_cues() -> None:
    case: Case = multi_speaker_case()
    transcript = read_transcript(case.result, case.context.speakers)
    cues = make_cues(transcript)
    long_turn = [
        c for c in cues if c.speaker == "SPEAKER_01" and c.start < 50_000 and c.start > 23_000
    ]
    assert len(long_turn) == 4  # a 300-character sentence: four cues of two lines
    lengths = [sum(len(line) for line in c.lines) for c in long_turn]
    assert max(lengths) - min(lengths) < 15
