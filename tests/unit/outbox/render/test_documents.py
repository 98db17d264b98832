"""Transcript documents read back by real readers: HTML by an XML parser and by html5lib
(strict), DOCX by python-docx, JSON by json; and the rules for naming speakers."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
import zipfile

import docx
import html5lib
import pytest

from cvsyncd import config
from cvsyncd.outbox.render import TRANSCRIPT_FORMATS, RenderContext, derived_suffixes, render
from cvsyncd.outbox.render.transcript import read_transcript, speaker_name
from tests.unit.outbox.render.test_cases import (
    all_transcript_cases,
    api_docs_case,
    build_transcription,
    empty_fields,
    multi_speaker_case,
    multitrack_case,
    partial_case,
    sparse_case,
)

XHTML = "{http://www.w3.org/1999/xhtml}"
CASES = {case.name: case for case in all_transcript_cases()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_html_is_well_formed_xml_and_valid_html5(name: str) -> None:
    case = CASES[name]
    page = render(".transcript.html", case.result, case.context)
    root = ET.fromstring(page)  # well-formed XML, or this raises
    assert root.tag == f"{XHTML}html" and root.get("lang")
    html5lib.HTMLParser(strict=True).parse(page)  # no HTML5 parse error, or this raises
    transcript = read_transcript(case.result, case.context.speakers, case.context.track_names)
    paragraphs = [p.text for p in root.iter(f"{XHTML}p")]
    assert paragraphs == [p.text for p in transcript.paragraphs]
    cites = [c.text for c in root.iter(f"{XHTML}cite")]
    assert cites == [f"{transcript.name(p.speaker)}:" for p in transcript.paragraphs]
    times = list(root.iter(f"{XHTML}time"))
    assert all(t.get("datetime", "").startswith("PT") for t in times)


def test_html_is_self_contained_and_escapes_text() -> None:
    case = multi_speaker_case()
    page = render(".transcript.html", case.result, case.context).decode()
    assert "<style>" in page
    for external in ("src=", "href=", "@import", "url(", "<script", "<link"):
        assert external not in page
    assert "R&amp;D" in page and "&lt;laughs&gt;" in page and "<laughs>" not in page
    root = ET.fromstring(page)
    texts = " ".join(p.text or "" for p in root.iter(f"{XHTML}p"))
    assert '"if x < 3 and y > 5"' in texts and "Zürich" in texts and "🎙️" in texts


@pytest.mark.parametrize("name", sorted(CASES))
def test_docx_opens_with_python_docx(name: str) -> None:
    case = CASES[name]
    data = render(".transcript.docx", case.result, case.context)
    document = docx.Document(io.BytesIO(data))
    paragraphs = [p.text for p in document.paragraphs]
    transcript = read_transcript(case.result, case.context.speakers, case.context.track_names)
    assert paragraphs[0] == case.context.title
    assert document.paragraphs[0].style is not None
    assert document.paragraphs[0].style.name == "Title"
    assert paragraphs[2::2] == [p.text for p in transcript.paragraphs]
    for heading, paragraph in zip(paragraphs[1::2], transcript.paragraphs, strict=True):
        assert heading.startswith(f"{transcript.name(paragraph.speaker)}  ")
    assert document.core_properties.title == case.context.title
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        assert package.testzip() is None
        assert package.namelist()[0] == "[Content_Types].xml"
        for name_in_zip in package.namelist():
            ET.fromstring(package.read(name_in_zip))  # every part is well-formed XML


def test_docx_is_byte_for_byte_deterministic() -> None:
    case = multi_speaker_case()
    assert render(".transcript.docx", case.result, case.context) == render(
        ".transcript.docx", multi_speaker_case().result, case.context
    )


def test_json_transcript_describes_itself() -> None:
    case = multi_speaker_case()
    document = json.loads(render(".transcript.json", case.result, case.context))
    assert document["version"] == "1.0.0" and document["description"]
    assert document["speakers"] == {
        "SPEAKER_00": "Ana",
        "SPEAKER_01": "Ben",
        "SPEAKER_02": "Speaker 3",
    }
    words = case.result["transcription"]["transcription"]["words"]
    assert [s["body"] for s in document["segments"]] == [w["text"] for w in words]
    for segment in document["segments"]:
        assert segment["startTime"] <= segment["endTime"]
        assert document["speakers"][segment["speakerId"]] == segment["speaker"]
    # the paragraph that runs across a change of speaker is split where the speaker changes
    speakers = [p["speaker"] for p in document["paragraphs"]]
    assert speakers == ["Ana", "Ana", "Ben", "Ana", "Ben", "Speaker 3", "Ben", "Ana"]


def test_txt_labels_each_paragraph_and_separates_them_by_blank_lines() -> None:
    case = multitrack_case()
    text = render(".transcript.txt", case.result, case.context).decode()
    blocks = text.rstrip("\n").split("\n\n")
    assert [b.split(":")[0] for b in blocks] == ["alex-mic", "sam-mic", "alex-mic"]
    assert blocks[1] == "sam-mic: Loud and clear. Your mic sounds much better than last week."


def test_txt_without_speaker_turns_has_no_labels() -> None:
    result = empty_fields() | {
        "transcription": {"paragraphs": [{"start": 0, "end": 2, "text": " Hello there."}]}
    }
    assert render(".transcript.txt", result, RenderContext("a", "a")) == b"Hello there.\n"
    # and subtitles are made from the paragraph when there are no word timings
    srt_text = render(".transcript.srt", result, RenderContext("a", "a")).decode()
    assert srt_text == "1\n00:00:00,000 --> 00:00:02,000\nHello there.\n"


def test_markdown_escapes_what_would_be_markup() -> None:
    case = multi_speaker_case()
    text = render(".transcript.md", case.result, case.context).decode()
    assert text.startswith("# night-shift-12.wav\n")
    assert "\\<laughs\\>" in text and "x \\< 3" in text
    assert "**[00:00:50] Speaker 3:** Can I add something?" in text


@pytest.mark.parametrize(
    ("label", "speakers", "tracks", "expected"),
    [
        ("SPEAKER_00", ("Ana", "Ben"), (), "Ana"),
        ("SPEAKER_01", ("Ana", "Ben"), ("a-mic", "b-mic"), "Ben"),
        ("SPEAKER_01", ("Ana",), ("a-mic", "b-mic"), "b-mic"),
        ("SPEAKER_02", ("Ana",), ("a-mic", "b-mic"), "Speaker 3"),
        ("SPEAKER_00", (" ",), (), "Speaker 1"),
        ("SPEAKER_10", (), (), "Speaker 11"),
        ("Host", (), (), "Host"),
    ],
)
def test_speaker_names(
    label: str, speakers: tuple[str, ...], tracks: tuple[str, ...], expected: str
) -> None:
    assert speaker_name(label, speakers, tracks) == expected


def test_derived_suffixes_follow_what_the_result_holds() -> None:
    formats = ("txt", "srt", "docx")
    assert derived_suffixes(sparse_case().result, formats, []) == []
    assert derived_suffixes(partial_case().result, formats, []) == [".summary.md"]
    assert derived_suffixes(multitrack_case().result, formats, []) == [
        ".transcript.txt",
        ".transcript.srt",
        ".transcript.docx",
        ".summary.md",
        ".chapters.json",
        ".chapters.txt",
    ]
    case = api_docs_case()
    assert derived_suffixes(case.result, ("vtt", "vtt"), ["timeline_audacity"]) == [
        ".transcript.vtt",
        ".summary.md",
        ".chapters.json",
        ".chapters.txt",
        ".social.md",
        ".markers.reaper.csv",
        ".markers.audition.csv",
        ".markers.cuts.json",
    ]
    # a label file under another name is recognised by its content
    labels = {"1": "0.5\t0.9\tCUT_FILLER_SOUND\n", "2": "not a label file"}
    assert derived_suffixes(case.result, (), labels)[-3:][0] == ".markers.reaper.csv"
    assert derived_suffixes(case.result, (), ["1"])[-1] == ".social.md"
    with pytest.raises(ValueError, match="unknown transcript format 'pdf'"):
        derived_suffixes(case.result, ("pdf",), [])


@pytest.mark.parametrize(
    ("suffix", "message"),
    [
        (".transcript.txt", "no transcript"),
        (".transcript.docx", "no transcript"),
        (".summary.md", "no summary"),
        (".chapters.json", "no summary"),
        (".social.md", "no social posts"),
        (".markers.cuts.json", "no Audacity label file"),
        (".transcript.pdf", "unknown output"),
        (".nonsense", "unknown output"),
    ],
)
def test_render_says_plainly_what_is_missing(suffix: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render(suffix, sparse_case().result, sparse_case().context)


def test_a_transcript_without_words_or_paragraphs_is_refused() -> None:
    with pytest.raises(ValueError, match="no usable paragraphs or words"):
        render(".transcript.srt", partial_case().result, partial_case().context)
    with pytest.raises(ValueError, match="no chapters"):
        render(".chapters.txt", partial_case().result, partial_case().context)


def test_malformed_entries_are_skipped() -> None:
    transcription = build_transcription([])
    transcription["transcription"] = {
        "words": [
            {"start": "x", "end": 1, "text": "bad"},
            {"start": 0.5, "end": 0.9, "text": "  "},
            {"start": float("nan"), "end": 1, "text": "nan"},
            {"start": True, "end": 1, "text": "bool"},
            {"start": 1.0, "end": 1.4, "text": "good"},
            "not an object",
        ],
        "paragraphs": [{"start": 0, "end": 2, "speaker": None}, {"start": 0, "end": 2}],
    }
    result = empty_fields() | {"transcription": transcription}
    assert render(".transcript.txt", result, RenderContext("a", "a")) == b"good\n"


def test_the_formats_are_those_the_config_accepts() -> None:
    assert TRANSCRIPT_FORMATS == config.TRANSCRIPT_FORMATS
