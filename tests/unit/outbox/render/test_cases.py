"""Realistic Cleanvoice results for the renderer tests, and checks that they are realistic.

Each case is a result as ``GET /v2/edits/{id}`` returns it on SUCCESS, the render
context the pipeline would pass, and the marker files it would have downloaded. Word
timings are made from a script of (speaker, sentence) lines by a simple speaking-rate
model, so the times are consistent the way the API's are: words in order, inside their
paragraph, speaker turns around their words.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cvsyncd.emulator import content
from cvsyncd.outbox.render import RenderContext


@dataclass(frozen=True)
class Case:
    name: str
    result: dict[str, Any]
    context: RenderContext
    formats: tuple[str, ...] = ("txt", "srt", "vtt", "json", "md", "html", "docx")
    marker_files: dict[str, str] = field(default_factory=dict)


# -- making word timings from a script --------------------------------------------------

WORD_GAP = 0.06  # seconds of silence between two words of one breath


def word_seconds(word: str) -> float:
    """How long a word takes to say: a little per letter (a slow, clear speaker)."""
    return round(0.12 + 0.055 * len(word), 3)


@dataclass
class Line:
    speaker: str  # "SPEAKER_00"
    text: str
    pause: float = 0.5  # silence after this line
    paragraph_break: bool = True  # whether the API's text paragraph ends after it


def build_transcription(
    script: Sequence[Line], start: float = 0.0, turn_shift: float = 0.0
) -> dict[str, Any]:
    """Return a ``transcription`` object for ``script``.

    ``turn_shift`` moves the speaker turns' boundaries a little, as real diarization does
    (the docs' example has a turn starting 0.74 s after its first word).
    """
    words: list[dict[str, Any]] = []
    simple: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    clock = start
    paragraph: list[dict[str, Any]] = []
    for line in script:
        line_words = []
        for token in line.text.split():
            end = clock + word_seconds(token)
            entry: dict[str, Any] = {"id": len(words), "start": round(clock, 3)}
            entry["end"] = round(end, 3)
            entry["text"] = token
            words.append(entry)
            line_words.append(entry)
            clock = end + WORD_GAP
        clock += line.pause
        paragraph += line_words
        if line.paragraph_break:
            text = " " + " ".join(w["text"] for w in paragraph)
            simple.append(
                {"start": paragraph[0]["start"], "end": paragraph[-1]["end"], "text": text}
            )
            paragraph = []
        if turns and turns[-1]["speaker"] == line.speaker:
            turns[-1]["end"] = line_words[-1]["end"]
        else:
            turns.append(
                {"id": len(turns), "start": line_words[0]["start"], "end": line_words[-1]["end"]}
                | {"speaker": line.speaker}
            )
    if paragraph:
        text = " " + " ".join(w["text"] for w in paragraph)
        simple.append({"start": paragraph[0]["start"], "end": paragraph[-1]["end"], "text": text})
    for index, turn in enumerate(turns):
        if index:
            turn["start"] = round(turn["start"] + turn_shift, 6)
        if index + 1 < len(turns):
            turn["end"] = round(turn["end"] + turn_shift, 6)
    return {"paragraphs": simple, "transcription": {"words": words, "paragraphs": turns}}


def empty_fields() -> dict[str, Any]:
    return {
        "video": False,
        "filename": "5f0c3a",
        "download_url": "https://storage.example/5f0c3a.mp3?X-Amz-Signature=abc",
        "statistics": {"BREATH": 3, "DEADAIR": 1, "STUTTERING": 0, "MOUTH_SOUND": 0},
        "transcription": [],
        "summarization": [],
        "social_content": [],
        "merged_audio_url": [],
        "timestamps_markers_urls": [],
        "waveform_result": None,
    }


# -- the cases ----------------------------------------------------------------------------


def api_docs_case() -> Case:
    """The example result of the API documentation (GET /v2/edits/<ID>).

    Where the docs elide ("…", ",.."), the fixture completes them plausibly: the words of
    the first paragraph after the two documented ones, and the end of the truncated
    second paragraph. Documented values are kept exactly.
    """
    first = "This episode has been recorded two weeks before the war in Ukraine last year."
    timings = [(0, 0.365), (0.365, 1.00375)]
    clock = 1.00375
    for token in first.split()[2:]:
        timings.append((round(clock + 0.05, 5), round(clock + 0.05 + word_seconds(token), 5)))
        clock = timings[-1][1]
    words = [
        {"id": i, "end": end, "text": token, "start": start}
        for i, (token, (start, end)) in enumerate(zip(first.split(), timings, strict=True))
    ]
    second = "Machine learning, which deals with probability a lot"
    clock = 667.2
    for token in second.split():
        words.append(
            {
                "id": len(words),
                "start": round(clock, 3),
                "end": round(clock + word_seconds(token), 3),
            }
            | {"text": token}
        )
        clock += word_seconds(token) + WORD_GAP
    result = {
        "video": False,
        "filename": "98d88d834dca4d61a1cadd1d42d9fcd4",
        "statistics": {
            "BREATH": 340,
            "DEADAIR": 124,
            "STUTTERING": 2,
            "MOUTH_SOUND": 5,
            "FILLER_SOUND": 17,
        },
        "download_url": "https://fra1.digitaloceanspaces.com/cleanvoice/uploads/b309cb56-0ae7-4",
        "summarization": {
            "title": "Combating Poaching with AI: Protecting Endangered Wildlife",
            "summary": "In this episode of the Weird AI...",
            "chapters": [
                {"start": 0, "title": "AI Combats Poaching to Save Elephants"},
                {"start": 230.65, "title": "Tracking Wildlife with Motion-Activated Cameras"},
            ],
            "summaries": ["In this episode ...", "The speakers discuss.."],
            "key_learnings": "...",
            "summary_of_summary": "...",
            "episode_description": "...",
        },
        "transcription": {
            "paragraphs": [
                {"end": 5.84, "text": " " + first, "start": 0},
                {"end": 671.9, "text": " " + second, "start": 667.2},
            ],
            "transcription": {
                "words": words,
                "paragraphs": [
                    {
                        "id": 0,
                        "end": 9.872665534804755,
                        "start": 0.7385398981324278,
                        "speaker": "SPEAKER_01",
                    },
                    {"id": 1, "end": 671.9, "start": 667.2, "speaker": "SPEAKER_00"},
                ],
            },
        },
        "social_content": {
            "newsletter": "…",
            "twitter_thread": "…",
            "linkedin": "…",
        },
        "merged_audio_url": [],
        "timestamps_markers_urls": {
            "timeline_audacity": "https://fra1.digitaloceanspaces.com/cleanvoice/t.txt?X-Amz=1"
        },
        "waveform_result": None,
    }
    labels = "0.120000\t0.480000\tCUT_FILLER_SOUND\n3.000000\t3.400000\tMUTE_BREATH\n"
    context = RenderContext(stem="ep1", title="ep1.mp3", markers={"timeline_audacity": labels})
    return Case("api_docs", result, context, marker_files={"timeline_audacity": labels})


MULTI_SPEAKER_SCRIPT = [
    Line(
        "SPEAKER_00", "Welcome back to Night Shift, the show about people who work while we sleep."
    ),
    Line(
        "SPEAKER_00",
        "Today I'm talking with two guests about R&D budgets, hospital night rotations, "
        'and why a rule like "if x < 3 and y > 5" ends up in a nurse\'s handbook.',
        pause=0.3,
        paragraph_break=False,
    ),
    # the API's text paragraph goes on across the change of speaker
    Line("SPEAKER_01", "Thanks for having me, Ana.", pause=0.2),
    Line("SPEAKER_00", "Right.", pause=0.15),
    Line(
        "SPEAKER_01",
        "So the first thing you notice on a night rotation is that the hospital never "
        "really sleeps, it just gets quieter, and the quiet is deceptive because every "
        "decision you make at four in the morning carries the same weight as one made at "
        "noon, only with half the people around to double-check it and nobody to call.",
        pause=2.5,
    ),
    Line(
        "SPEAKER_02",
        "Can I add something? In Zürich we called it „die stille Schicht“ — the quiet shift — "
        "and the café downstairs stayed open till 3 a.m. 🎙️",
    ),
    Line("SPEAKER_01", "Exactly… and that café saved lives, honestly!", pause=0.8),
    Line("SPEAKER_00", "Let's take a short break. <laughs> We'll be right back & then more.", 1.0),
]


def multi_speaker_case() -> Case:
    """Three speakers (two named by the folder), a turn change inside a text paragraph,
    an interjection, long sentences, a long pause, Unicode, and ``&<>`` in the text."""
    transcription = build_transcription(MULTI_SPEAKER_SCRIPT, start=1.25, turn_shift=0.04)
    result = empty_fields() | {
        "transcription": transcription,
        "summarization": {
            "title": "Night Shift: Medicine After Midnight",
            "summary": "Ana talks with Ben and a guest from Zürich about night rotations.\r\n\r\n"
            "They compare notes on R&D budgets & handbooks.",
            "chapters": [  # out of order on purpose
                {"start": 31.4, "title": "The quiet shift"},
                {"start": 0, "title": "Welcome & introductions"},
                {"start": 12.05, "title": "What a night rotation is like"},
            ],
            "summaries": [
                "Ana introduces the show and her guests.",
                "Ben describes a night rotation.",
                "A guest remembers the café in Zürich.",
            ],
            "key_learnings": "- Night decisions weigh as much as day ones.\n- Keep the café open.",
            "summary_of_summary": "Night work, seen from the inside.",
            "episode_description": "Two night-shift veterans on what happens after midnight.",
        },
        "social_content": {
            "newsletter": "This week on Night Shift: what happens after midnight.",
            "twitter_thread": "1/ Night rotations never really sleep.\n2/ The café matters. 🧵",
            "linkedin": "Night-shift work shapes decisions — here is what we learned.",
        },
        "timestamps_markers_urls": {
            "timeline_audacity": "https://storage.example/res/timeline.txt?X-Amz-Signature=s3cr3t"
        },
    }
    labels = (
        "1.020000\t1.250000\tMUTE_BREATH\r\n"
        "\\\t120.000000\t4000.000000\r\n"  # the frequency line of a spectral label
        "\r\n"
        "7.500000\t7.910000\tCUT_FILLER_SOUND\r\n"
        "12.000000\t12.000000\tNOTE, check levels\r\n"  # a point label: a REAPER marker
        "18.250000\t19.750000\tCUT_DEADAIR\r\n"
        "44.100000\t44.400000\tCUT_STUTTERING\r\n"
    )
    context = RenderContext(
        stem="night-shift-12",
        title="night-shift-12.wav",
        speakers=("Ana", "Ben"),
        markers={"timeline_audacity": labels},
    )
    return Case("multi_speaker", result, context, marker_files={"timeline_audacity": labels})


def multitrack_case() -> Case:
    """A two-track recording: speakers are named after the track files; markers come as a
    list of URLs; ``summaries`` is ``""`` and social content was not asked for."""
    script = [
        Line("SPEAKER_00", "Okay, we're recording. Can you hear me clearly?"),
        Line("SPEAKER_01", "Loud and clear. Your mic sounds much better than last week."),
        Line("SPEAKER_00", "New cable. Let's start with the listener questions."),
    ]
    result = empty_fields() | {
        "transcription": build_transcription(script, start=0.4),
        "summarization": {
            "title": "",
            "summary": "A mic check, then listener questions.",
            "chapters": [{"start": 0.4, "title": "Mic check"}, {"start": 9.5, "title": ""}],
            "summaries": "",
            "key_learnings": "",
            "summary_of_summary": "",
            "episode_description": "",
        },
        "merged_audio_url": ["https://storage.example/mix.wav"],
        "timestamps_markers_urls": ["https://storage.example/markers.txt?sig=1"],
    }
    labels = "2.5\t2.9\tCUT_FILLER_SOUND\n"
    context = RenderContext(
        stem="session-04",
        title="session-04",
        track_names=("alex-mic", "sam-mic"),
        markers={"1": labels},
    )
    return Case("multitrack", result, context, ("txt", "srt", "vtt"), marker_files={"1": labels})


def sparse_case() -> Case:
    """Nothing but the audio was asked for: every optional field is ``[]`` or null."""
    result = empty_fields() | {"summarization": None, "social_content": None}
    return Case("sparse", result, RenderContext(stem="plain", title="plain.mp3"))


def partial_case() -> Case:
    """Summaries asked for but mostly empty; a transcript object with no words (silence)."""
    result = empty_fields() | {
        "transcription": {"paragraphs": [], "transcription": {"words": [], "paragraphs": []}},
        "summarization": {
            "title": "Room tone",
            "summary": "",
            "chapters": [],
            "summaries": "",
            "key_learnings": "",
            "summary_of_summary": "",
            "episode_description": "",
        },
        "social_content": {"newsletter": "", "twitter_thread": "", "linkedin": ""},
    }
    return Case("partial", result, RenderContext(stem="room-tone", title="room-tone.flac"))


def emulator_case(duration: float = 620.0, *, muted: bool = False) -> Case:
    """What cvsyncd's emulator returns for a recording of ``duration`` seconds."""
    digest = bytes(range(32))
    statistics = content.make_statistics(digest, duration)
    labels = content.render_audacity_labels(
        content.make_markers(statistics, digest, duration, muted=muted)
    )
    result = empty_fields() | {
        "statistics": statistics,
        "transcription": content.make_transcription(duration),
        "summarization": content.make_summarization(duration),
        "social_content": content.make_social_content(),
        "timestamps_markers_urls": {"timeline_audacity": "http://127.0.0.1:1/t.txt"},
    }
    context = RenderContext(stem="emu", title="emu.wav", markers={"timeline_audacity": labels})
    return Case(
        f"emulator_{int(duration)}", result, context, marker_files={"timeline_audacity": labels}
    )


GOLDEN_CASES: dict[str, Callable[[], Case]] = {
    "api_docs": api_docs_case,
    "multi_speaker": multi_speaker_case,
    "multitrack": multitrack_case,
    "sparse": sparse_case,
    "partial": partial_case,
}


def all_transcript_cases() -> list[Case]:
    """Every case with a transcript, including emulator results short and long."""
    return [
        api_docs_case(),
        multi_speaker_case(),
        multitrack_case(),
        emulator_case(7.0),
        emulator_case(620.0),
    ]


# -- the cases are what they claim to be ----------------------------------------------------


def test_words_are_ordered_and_inside_their_paragraphs() -> None:
    for case in all_transcript_cases():
        transcription = case.result["transcription"]
        words = transcription["transcription"]["words"]
        assert all(a["end"] <= b["start"] for a, b in itertools.pairwise(words))
        for word in words:
            mid = (word["start"] + word["end"]) / 2
            assert any(p["start"] <= mid <= p["end"] for p in transcription["paragraphs"]), word


def test_multi_speaker_case_has_what_it_promises() -> None:
    case = multi_speaker_case()
    transcription = case.result["transcription"]
    speakers = {p["speaker"] for p in transcription["transcription"]["paragraphs"]}
    assert speakers == {"SPEAKER_00", "SPEAKER_01", "SPEAKER_02"}
    text = " ".join(p["text"] for p in transcription["paragraphs"])
    assert all(char in text for char in "&<>ü🎙") and "„" in text
    # one text paragraph holds the end of Ana's turn and the start of Ben's
    turns = transcription["transcription"]["paragraphs"]
    change = turns[1]["start"]
    assert any(p["start"] < change < p["end"] for p in transcription["paragraphs"])
