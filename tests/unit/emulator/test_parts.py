"""The emulator's pure parts: vocabulary, media sniffing, ranges, signing, limits, content."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from cvsyncd.emulator import content
from cvsyncd.emulator.media import estimated_duration, sniff_kind
from cvsyncd.emulator.ratelimit import SlidingWindowLimiter
from cvsyncd.emulator.signing import UrlSigner, Verdict
from cvsyncd.emulator.storage import RangeNotSatisfiable, parse_range
from cvsyncd.emulator.vocabulary import EditRequest, parse_edit_request, validate_config


def test_every_problem_is_reported_at_once() -> None:
    problems = validate_config({"filers": True, "breath": 3, "summarize": True, "mute_lufs": 5})
    assert [p.field for p in problems] == [
        "input.config.filers",
        "input.config.breath",
        "input.config.mute_lufs",
        "input.config.summarize",
    ]
    assert 'did you mean "fillers"' in problems[0].message
    assert '"natural"' in problems[1].message


def test_a_valid_body_becomes_a_request() -> None:
    files = ["https://a/b.mp3", "http://c/d.wav"]
    config = {"sound_studio": True}
    body = {
        "input": {"files": files, "config": config, "upload_type": "multitrack", "template_id": 42}
    }
    assert parse_edit_request(body) == EditRequest(
        files=("https://a/b.mp3", "http://c/d.wav"),
        config={"sound_studio": True},
        upload_type="multitrack",
        template_id=42,
    )


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "wav"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "avi"),
        (b"ID3\x03\x00", "mp3"),
        (b"\xff\xfb\x90\x64", "mp3"),
        (b"\xff\xf1\x50\x80", "aac"),
        (b"fLaC", "flac"),
        (b"OggS\x00", "ogg"),
        (b"\x00\x00\x00\x18ftypmp42", "mp4"),
        (b"\x1a\x45\xdf\xa3", "mkv"),
        (b"FORM\x00\x00\x00\x00AIFC", "aiff"),
        (b"%PDF-1.7", None),
        (b"hello world", None),
        (b"", None),
        (b"\xff\xe1", None),  # frame sync with the reserved layer and no ADTS pattern
    ],
)
def test_media_is_recognised_by_magic_numbers(head: bytes, kind: str | None) -> None:
    assert sniff_kind(head) == kind


def test_compressed_duration_is_estimated_at_128_kbits() -> None:
    assert estimated_duration(16_000 * 60) == 60.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("bytes=0-0", (0, 0)), ("bytes=5-", (5, 99)), ("bytes=-5", (95, 99)),
     ("bytes=90-200", (90, 99)), ("bytes=5-2", None), ("items=0-1", None), ("bytes=1-2,4-5", None)],
)  # fmt: skip
def test_ranges(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=-0", "bytes=200-300"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 100)


def test_signatures() -> None:
    now = [1_000_000.0]
    signer = UrlSigner(b"secret", clock=lambda: now[0])

    def query(text: str) -> dict[str, list[str]]:
        return {k: [v] for k, v in (pair.split("=", 1) for pair in text.split("&"))}

    signed = query(signer.sign("PUT", "/storage/uploads/x/a b.wav"))
    assert signer.verify("PUT", "/storage/uploads/x/a b.wav", signed) is Verdict.OK
    assert signer.verify("GET", "/storage/uploads/x/a b.wav", signed) is Verdict.MISMATCH
    assert signer.verify("PUT", "/storage/uploads/x/other.wav", signed) is Verdict.MISMATCH
    assert signer.verify("PUT", "/storage/uploads/x/a b.wav", {}) is Verdict.MISSING
    assert (
        UrlSigner(b"other").verify("PUT", "/storage/uploads/x/a b.wav", signed) is Verdict.MISMATCH
    )
    assert (
        signer.verify("PUT", "/p", {**query(signer.sign("PUT", "/p")), "X-Amz-Expires": ["99999"]})
        is Verdict.MISMATCH
    )
    now[0] += 3601
    assert signer.verify("PUT", "/storage/uploads/x/a b.wav", signed) is Verdict.EXPIRED


def test_sliding_window() -> None:
    now = [0.0]
    limiter = SlidingWindowLimiter({"submit": 2}, window=60, clock=lambda: now[0])
    assert limiter.admit("k", "submit") is None
    now[0] = 30
    assert limiter.admit("k", "submit") is None
    assert limiter.admit("k", "submit") == 30
    assert limiter.admit("other key", "submit") is None
    now[0] = 60.5
    assert limiter.admit("k", "submit") is None
    assert limiter.admit("k", "submit") == 30


def test_long_audio_has_chapters_paragraphs_and_markers_in_place() -> None:
    duration = 1000.0
    summary = content.make_summarization(duration)
    assert [c["start"] for c in summary["chapters"]] == [0, 300, 600, 900]
    assert len(summary["summaries"]) == 4
    transcript = content.make_transcription(duration)
    speakers = [p["speaker"] for p in transcript["transcription"]["paragraphs"]]
    assert speakers[:4] == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_00", "SPEAKER_01"]
    words = transcript["transcription"]["words"]
    for paragraph in transcript["transcription"]["paragraphs"]:
        inside = [
            w for w in words if paragraph["start"] <= w["start"] and w["end"] <= paragraph["end"]
        ]
        assert len(inside) in (
            content.WORDS_PER_PARAGRAPH,
            len(words) % content.WORDS_PER_PARAGRAPH,
        )

    digest = bytes(range(32))
    stats = content.make_statistics(digest, duration)
    markers = content.make_markers(stats, digest, duration, muted=False)
    assert len(markers) == sum(stats.values())
    assert all(0 <= start < end <= duration for start, end, _ in markers)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(markers))
    muted = content.make_markers(stats, digest, duration, muted=True)
    assert Counter(label.split("_")[0] for _, _, label in muted) == {"MUTE": len(markers)}


def test_silence_yields_nothing() -> None:
    assert content.make_statistics(bytes(32), 0.0) == dict.fromkeys(
        ("BREATH", "DEADAIR", "STUTTERING", "MOUTH_SOUND", "FILLER_SOUND"), 0
    )
    assert content.make_transcription(0.1)["paragraphs"] == []
