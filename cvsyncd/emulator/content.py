"""The parts of a SUCCESS result the emulator makes up: statistics, transcript, summary,
social posts and timestamp markers.

The emulator does not listen to the audio. Everything here is derived deterministically
from the input's duration and a hash of its bytes, so the same upload always yields the
same result, timings are consistent (words inside paragraphs, markers inside the audio,
one marker per counted event), and every text says plainly that it is emulator output.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping
from typing import Any

TRANSCRIPT_TEXT = (
    "This is emulated transcript text from the cvsyncd emulator, "
    "not a transcription of the uploaded audio."
)
SENTENCE = TRANSCRIPT_TEXT.split()
WORD_SECONDS = 0.4
WORD_LENGTH = 0.35
WORDS_PER_PARAGRAPH = 20
SPEAKERS = ("SPEAKER_00", "SPEAKER_01")
CHAPTER_SECONDS = 300.0

# statistic → (events per minute at least, extra events per minute chosen by one byte of
# the input's hash modulo this spread, longest marker in seconds)
_STATISTICS: Mapping[str, tuple[int, int, float]] = {
    "BREATH": (3, 6, 0.4),
    "DEADAIR": (1, 3, 1.5),
    "STUTTERING": (0, 2, 0.3),
    "MOUTH_SOUND": (0, 3, 0.1),
    "FILLER_SOUND": (1, 4, 0.5),
}
_CUT_LABELS = {
    "BREATH": "MUTE_BREATH",
    "DEADAIR": "CUT_DEADAIR",
    "STUTTERING": "CUT_STUTTERING",
    "MOUTH_SOUND": "CUT_MOUTH_SOUND",
    "FILLER_SOUND": "CUT_FILLER_SOUND",
}

Marker = tuple[float, float, str]


def make_statistics(digest: bytes, duration: float) -> dict[str, int]:
    """Given the input's hash and duration, return the counts of each detected event."""
    minutes = duration / 60
    counts = {}
    for index, (name, (base, spread, _)) in enumerate(_STATISTICS.items()):
        rate = base + digest[index] % spread
        counts[name] = math.ceil(rate * minutes) if duration > 0 else 0
    return counts


def _label(statistic: str, muted: bool) -> str:
    label = _CUT_LABELS[statistic]
    return "MUTE_" + label.split("_", 1)[1] if muted else label


def make_markers(
    statistics: Mapping[str, int], digest: bytes, duration: float, *, muted: bool
) -> list[Marker]:
    """Return one marker per counted event, in order, each inside its own slice of the audio."""
    events = [name for name, count in statistics.items() for _ in range(count)]
    random.Random(digest).shuffle(events)
    if not events:
        return []
    slot = duration / len(events)
    markers = []
    for index, name in enumerate(events):
        start = index * slot + slot / 4
        length = min(slot / 2, _STATISTICS[name][2])
        markers.append((round(start, 6), round(start + length, 6), _label(name, muted)))
    return markers


def render_audacity_labels(markers: list[Marker]) -> str:
    """Return markers as an Audacity label file: ``start<TAB>end<TAB>LABEL`` lines."""
    return "".join(f"{start:.6f}\t{end:.6f}\t{label}\n" for start, end, label in markers)


def _words(duration: float) -> list[dict[str, Any]]:
    count = int(duration / WORD_SECONDS)
    return [
        {
            "id": i,
            "start": round(i * WORD_SECONDS, 3),
            "end": round(i * WORD_SECONDS + WORD_LENGTH, 3),
            "text": SENTENCE[i % len(SENTENCE)],
        }
        for i in range(count)
    ]


def make_transcription(duration: float) -> dict[str, Any]:
    """Return a transcript in the documented shape, speakers alternating by paragraph."""
    words = _words(duration)
    simple, detailed = [], []
    for number, first in enumerate(range(0, len(words), WORDS_PER_PARAGRAPH)):
        group = words[first : first + WORDS_PER_PARAGRAPH]
        start, end = group[0]["start"], group[-1]["end"]
        text = " " + " ".join(word["text"] for word in group)
        simple.append({"start": start, "end": end, "text": text})
        speaker = SPEAKERS[number % len(SPEAKERS)]
        detailed.append({"id": number, "start": start, "end": end, "speaker": speaker})
    return {"paragraphs": simple, "transcription": {"words": words, "paragraphs": detailed}}


def _chapter_starts(duration: float) -> list[float]:
    return [i * CHAPTER_SECONDS for i in range(max(1, math.ceil(duration / CHAPTER_SECONDS)))]


def make_summarization(duration: float) -> dict[str, Any]:
    """Return a summary in the documented shape: one chapter per five minutes of audio."""
    starts = _chapter_starts(duration)
    minutes = duration / 60
    return {
        "title": f"Emulated episode ({minutes:.1f} minutes)",
        "summary": "An emulated summary from the cvsyncd emulator; the audio was not analysed.",
        "chapters": [
            {"start": start, "title": f"Emulated chapter {i + 1}"} for i, start in enumerate(starts)
        ],
        "summaries": [
            f"Emulated summary of chapter {i + 1}, from {start:.0f} s."
            for i, start in enumerate(starts)
        ],
        "key_learnings": "- The cvsyncd emulator generated this text.\n- No audio was analysed.",
        "summary_of_summary": "Emulated output of the cvsyncd emulator.",
        "episode_description": f"An emulated episode of {minutes:.1f} minutes (cvsyncd emulator).",
    }


def render_markers_json(markers: list[Marker]) -> str:
    """The same markers as a JSON list, ``[{"start", "end", "label"}]`` in seconds: the
    JS SDK's test fixture lists a ``timestamps.json`` marker file."""
    entries = [{"start": start, "end": end, "label": label} for start, end, label in markers]
    return json.dumps(entries, indent=1) + "\n"


def make_social_content() -> dict[str, str]:
    """Return social posts in the documented shape, clearly marked as emulator output."""
    return {
        "newsletter": "Emulated newsletter text from the cvsyncd emulator.",
        "twitter_thread": (
            "1/ Emulated thread from the cvsyncd emulator.\n2/ No audio was analysed."
        ),
        "linkedin": "Emulated LinkedIn post from the cvsyncd emulator.",
    }
