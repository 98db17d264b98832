"""Summary, chapters and social posts: chapters JSON checked against the Podcasting 2.0
JSON chapters schema (written here from the spec), the other files read back."""

from __future__ import annotations

import itertools
import json
import re

import jsonschema
import pytest

from cvsyncd.outbox.render import RenderContext, render
from tests.unit.outbox.render.test_cases import (
    Case,
    api_docs_case,
    empty_fields,
    emulator_case,
    multi_speaker_case,
    multitrack_case,
)

# Podcasting 2.0 "JSON Chapters Format", version 1.2 (podcast-namespace, chapters/
# jsonChapters.md): required `version` and `chapters`; a chapter requires `startTime`
# (seconds, float) and may have `title`, `img`, `url`, `toc`, `endTime`, `location`.
CHAPTERS_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["version", "chapters"],
    "properties": {
        "version": {"type": "string", "pattern": r"^1\.2(\.\d+)?$"},
        "author": {"type": "string"},
        "title": {"type": "string"},
        "podcastName": {"type": "string"},
        "description": {"type": "string"},
        "fileName": {"type": "string"},
        "waypoints": {"type": "boolean"},
        "chapters": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["startTime"],
                "additionalProperties": False,
                "properties": {
                    "startTime": {"type": "number", "minimum": 0},
                    "endTime": {"type": "number", "minimum": 0},
                    "title": {"type": "string"},
                    "img": {"type": "string"},
                    "url": {"type": "string"},
                    "toc": {"type": "boolean"},
                    "location": {
                        "type": "object",
                        "required": ["name", "geo"],
                        "properties": {
                            "name": {"type": "string"},
                            "geo": {"type": "string"},
                            "osm": {"type": "string"},
                        },
                    },
                },
            },
        },
    },
}
CASES = [api_docs_case(), multi_speaker_case(), multitrack_case(), emulator_case(1900.0)]


def test_the_schema_is_a_valid_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(CHAPTERS_SCHEMA)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_chapters_json_is_valid_podcasting_2_chapters(case: Case) -> None:
    document = json.loads(render(".chapters.json", case.result, case.context))
    jsonschema.validate(document, CHAPTERS_SCHEMA, cls=jsonschema.Draft202012Validator)
    starts = [c["startTime"] for c in document["chapters"]]
    assert starts == sorted(starts) and starts
    for chapter, following in itertools.pairwise(document["chapters"]):
        assert chapter["endTime"] == following["startTime"]
    assert all(c["title"] for c in document["chapters"])


def test_chapters_are_sorted_and_the_last_ends_with_the_speech() -> None:
    case = multi_speaker_case()
    document = json.loads(render(".chapters.json", case.result, case.context))
    assert [c["title"] for c in document["chapters"]] == [
        "Welcome & introductions",
        "What a night rotation is like",
        "The quiet shift",
    ]
    words = case.result["transcription"]["transcription"]["words"]
    assert document["chapters"][-1]["endTime"] == words[-1]["end"]


def test_chapters_without_a_transcript_leave_the_last_end_open() -> None:
    result = empty_fields() | {"summarization": {"chapters": [{"start": 5, "title": "A"}]}}
    document = json.loads(render(".chapters.json", result, RenderContext("x", "x.mp3")))
    assert document == {
        "version": "1.2.0",
        "title": "x.mp3",
        "chapters": [{"startTime": 5, "title": "A"}],
    }


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_chapters_txt_lines(case: Case) -> None:
    text = render(".chapters.txt", case.result, case.context).decode()
    lines = text.splitlines()
    assert lines
    for line in lines:
        assert re.fullmatch(r"\d\d:[0-5]\d:[0-5]\d\.\d{3} \S.*", line), line
    assert lines == sorted(lines)


def test_chapters_txt_past_an_hour() -> None:
    text = render(".chapters.txt", emulator_case(1900.0 * 2).result, RenderContext("e", "e"))
    assert b"01:00:00.000 Emulated chapter 13\n" in text


def test_summary_md_sections() -> None:
    case = multi_speaker_case()
    text = render(".summary.md", case.result, case.context).decode()
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings == [
        "# Night Shift: Medicine After Midnight",
        "## In short",
        "## Summary",
        "## Key learnings",
        "## Chapters",
        "## Chapter summaries",
        "### 00:00:00 Welcome & introductions",
        "### 00:00:12 What a night rotation is like",
        "### 00:00:31 The quiet shift",
    ]
    assert "- 00:00:31 The quiet shift\n" in text
    assert "\r" not in text and "\n\n\n" not in text


def test_summary_md_with_empty_summaries() -> None:
    case = multitrack_case()  # summaries is "" and most texts are empty
    text = render(".summary.md", case.result, case.context).decode()
    assert text == (
        "# session-04\n\n## Summary\n\nA mic check, then listener questions.\n\n"
        "## Chapters\n\n- 00:00:00 Mic check\n- 00:00:09 Chapter 2\n"
    )


def test_social_md_sections() -> None:
    case = multi_speaker_case()
    text = render(".social.md", case.result, case.context).decode()
    assert [line for line in text.splitlines() if line.startswith("## ")] == [
        "## Newsletter",
        "## Twitter/X thread",
        "## LinkedIn post",
    ]
    result = empty_fields() | {"social_content": {"newsletter": "", "linkedin": "Hi", "x": 1}}
    assert render(".social.md", result, RenderContext("s", "s")) == (
        b"# Social posts: s\n\n## LinkedIn post\n\nHi\n"
    )
