"""The summary, the chapters and the social posts of a result.

- ``.summary.md``: title, episode description, summary, key learnings, chapters with
  ``HH:MM:SS`` times and, when the API gives one per chapter, each chapter's summary.
- ``.chapters.json``: Podcasting 2.0 JSON chapters (version 1.2.0), the format of the
  ``<podcast:chapters>`` tag; ``endTime`` is the next chapter's start, and for the last
  chapter the end of the transcript when there is one.
- ``.chapters.txt``: ``HH:MM:SS.mmm Title`` lines, as podcast editors and hosts import
  (and YouTube reads from a description).
- ``.social.md``: the newsletter, the Twitter/X thread, the LinkedIn post and any other
  post the result holds, whether ``social_content`` is a mapping or a list.

The text the API writes is Markdown-like prose; it is kept as it is, only line ends and
control characters are tidied.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cvsyncd.outbox.render.common import (
    clean_block,
    clean_text,
    hms,
    hms_ms,
    items,
    json_seconds,
    mapping,
    seconds,
    to_ms,
)

CHAPTERS_VERSION = "1.2.0"
SOCIAL_SECTIONS = (
    ("newsletter", "Newsletter"),
    ("twitter_thread", "Twitter/X thread"),
    ("linkedin", "LinkedIn post"),
)


@dataclass(frozen=True)
class Chapter:
    start: int  # milliseconds
    end: int | None
    title: str


def summarization(result: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return mapping(result.get("summarization"))


def read_chapters(result: Mapping[str, Any], speech_end: int | None = None) -> list[Chapter]:
    """Return the result's chapters sorted by start, each ending where the next begins.

    Chapters without a valid start are left out; one without a title is "Chapter N".
    ``speech_end`` (ms), when known, ends the last chapter.
    """
    found = []
    for entry in items((summarization(result) or {}).get("chapters")):
        if not isinstance(entry, Mapping):
            continue
        start = seconds(entry.get("start"))
        if start is not None:
            found.append((to_ms(start), clean_text(entry.get("title"))))
    found.sort(key=lambda chapter: chapter[0])
    chapters = []
    for index, (start, title) in enumerate(found):
        end = found[index + 1][0] if index + 1 < len(found) else speech_end
        if end is not None and end <= start:
            end = None
        chapters.append(Chapter(start, end, title or f"Chapter {index + 1}"))
    return chapters


def _require(result: Mapping[str, Any]) -> Mapping[str, Any]:
    summary = summarization(result)
    if summary is None:
        raise ValueError("the result has no summary (was summarize asked for?)")
    return summary


def render_summary_md(result: Mapping[str, Any], title: str, speech_end: int | None) -> str:
    summary = _require(result)
    heading = clean_text(summary.get("title")) or title
    out = [f"# {heading}", ""]

    def section(name: str, text: str) -> None:
        if text:
            out.extend([f"## {name}", "", text, ""])

    description = clean_block(summary.get("episode_description"))
    if description:
        out.extend([description, ""])
    section("In short", clean_block(summary.get("summary_of_summary")))
    section("Summary", clean_block(summary.get("summary")))
    section("Key learnings", clean_block(summary.get("key_learnings")))
    chapters = read_chapters(result, speech_end)
    if chapters:
        out.extend(["## Chapters", ""])
        out.extend(f"- {hms(c.start)} {c.title}" for c in chapters)
        out.append("")
    summaries = [clean_block(s) for s in items(summary.get("summaries"))]
    summaries = [s for s in summaries if s]
    if summaries and len(summaries) == len(chapters):
        out.extend(["## Chapter summaries", ""])
        for chapter, text in zip(chapters, summaries, strict=True):
            out.extend([f"### {hms(chapter.start)} {chapter.title}", "", text, ""])
    elif summaries:
        section("Section summaries", "\n\n".join(summaries))
    return "\n".join(out).rstrip("\n") + "\n"


def _chapters_or_fail(result: Mapping[str, Any], speech_end: int | None) -> list[Chapter]:
    _require(result)
    chapters = read_chapters(result, speech_end)
    if not chapters:
        raise ValueError("the summary has no chapters")
    return chapters


def render_chapters_json(result: Mapping[str, Any], title: str, speech_end: int | None) -> str:
    chapters = _chapters_or_fail(result, speech_end)
    summary = _require(result)
    entries = []
    for chapter in chapters:
        entry: dict[str, Any] = {"startTime": json_seconds(chapter.start), "title": chapter.title}
        if chapter.end is not None:
            entry["endTime"] = json_seconds(chapter.end)
        entries.append(entry)
    document = {
        "version": CHAPTERS_VERSION,
        "title": clean_text(summary.get("title")) or title,
        "chapters": entries,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def render_chapters_txt(result: Mapping[str, Any], speech_end: int | None) -> str:
    chapters = _chapters_or_fail(result, speech_end)
    return "".join(f"{hms_ms(c.start)} {c.title}\n" for c in chapters)


# in a social post given as an object: the keys that name it, and those that hold its text
_POST_NAMES = ("platform", "channel", "type", "title", "name")
_POST_TEXTS = ("content", "text", "post", "body", "value")


def social_sections(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The social posts of a result as (heading, text), in the order given.

    ``social_content`` comes as a mapping (``newsletter``, ``twitter_thread``,
    ``linkedin`` and whatever other keys it has) or as a list (the docs' shape, which the
    Python SDK types as ``List[Any]``) of strings or objects. Nothing is dropped: a key
    cvsyncd does not know becomes a heading of its own, a thread given as a list of posts
    is joined. Empty values are left out.
    """
    value = result.get("social_content")
    sections: list[tuple[str, str]] = []
    if isinstance(value, Mapping):
        known = dict(SOCIAL_SECTIONS)
        ordered = [k for k, _ in SOCIAL_SECTIONS if k in value]
        ordered += [k for k in value if k not in known]
        for key in ordered:
            heading = known.get(key) or _heading(key)
            sections += _post(heading, value[key])
    elif isinstance(value, list):
        for number, item in enumerate(value, 1):
            sections += _post(f"Post {number}", item)
    return sections


def _heading(key: object) -> str:
    words = clean_text(str(key).replace("_", " ").replace("-", " "))
    return words[:1].upper() + words[1:] if words else "Post"


def _post(heading: str, value: Any) -> list[tuple[str, str]]:
    """The section(s) one social value makes: text, a list of texts, or an object."""
    if isinstance(value, Mapping):
        name = next((clean_text(value[k]) for k in _POST_NAMES if clean_text(value.get(k))), "")
        text = next((clean_block(value[k]) for k in _POST_TEXTS if clean_block(value.get(k))), "")
        if text:
            return [(_heading(name) if name else heading, text)]
        nested: list[tuple[str, str]] = []
        for key, inner in value.items():
            if key not in _POST_NAMES:  # a post's name alone is no post
                nested += _post(f"{heading}: {_heading(key)}", inner)
        return nested
    text = clean_block(value)
    return [(heading, text)] if text else []


def has_social(result: Mapping[str, Any]) -> bool:
    return bool(social_sections(result))


def render_social_md(result: Mapping[str, Any], title: str) -> str:
    sections = social_sections(result)
    if not sections:
        raise ValueError("the result has no social posts (was social_content asked for?)")
    heading = clean_text((summarization(result) or {}).get("title")) or title
    out = [f"# Social posts: {heading}", ""]
    for name, text in sections:
        out.extend([f"## {name}", "", text, ""])
    return "\n".join(out).rstrip("\n") + "\n"
