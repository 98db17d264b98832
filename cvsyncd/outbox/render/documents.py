"""Transcripts as documents: plain text, Markdown, JSON and HTML.

Each takes the :class:`~cvsyncd.render.transcript.Transcript` and a title and returns
text. Paragraphs are written with their speaker's name where one is known.

The JSON document is a Podcasting 2.0 JSON transcript (``version`` and ``segments``, one
segment per word, so podcast apps can use it as it is) with cvsyncd's own additions: the
speakers and the paragraphs. The HTML page follows the Podcasting 2.0 HTML transcript
(``<cite>`` speaker, ``<time>`` start, ``<p>`` text), is also well-formed XML, and loads
nothing from elsewhere.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from cvsyncd.outbox.render.common import hms, json_seconds
from cvsyncd.outbox.render.transcript import Transcript

JSON_TRANSCRIPT_VERSION = "1.0.0"  # of the Podcasting 2.0 JSON transcript format
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|])|(&(?=#?\w+;))")


def render_txt(transcript: Transcript) -> str:
    """One paragraph a block, ``Name: text``, blocks separated by a blank line."""
    blocks = []
    for paragraph in transcript.paragraphs:
        name = transcript.name(paragraph.speaker)
        blocks.append(f"{name}: {paragraph.text}" if name else paragraph.text)
    return "\n\n".join(blocks) + "\n"


def md_escape(text: str) -> str:
    """Escape what Markdown would otherwise read as formatting or HTML."""
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), text)


def render_md(transcript: Transcript, title: str) -> str:
    """A title heading, then ``**[HH:MM:SS] Name:** text`` paragraphs."""
    lines = [f"# {md_escape(title)}", ""]
    for paragraph in transcript.paragraphs:
        name = transcript.name(paragraph.speaker)
        label = f"[{hms(paragraph.start)}] {md_escape(name)}:" if name else hms(paragraph.start)
        lines += [f"**{label}** {md_escape(paragraph.text)}", ""]
    return "\n".join(lines)


def transcript_document(transcript: Transcript, title: str) -> dict[str, Any]:
    """The JSON transcript as a dict (see the module docstring)."""

    def speaker_fields(label: str | None) -> dict[str, str]:
        name = transcript.name(label)
        return {"speaker": name, "speakerId": label} if name and label else {}

    return {
        "version": JSON_TRANSCRIPT_VERSION,
        "generator": "cvsyncd",
        "description": (
            "Podcasting 2.0 JSON transcript: one segment per word, times in seconds. "
            "'speakers' maps each speakerId to its name; 'paragraphs' holds the text "
            "paragraph by paragraph."
        ),
        "title": title,
        "speakers": dict(transcript.names),
        "paragraphs": [
            {
                "startTime": json_seconds(p.start),
                "endTime": json_seconds(p.end),
                **speaker_fields(p.speaker),
                "body": p.text,
            }
            for p in transcript.paragraphs
        ],
        "segments": [
            {
                "startTime": json_seconds(w.start),
                "endTime": json_seconds(w.end),
                **speaker_fields(w.speaker),
                "body": w.text,
            }
            for w in transcript.words
        ],
    }


def render_json(transcript: Transcript, title: str) -> str:
    """The JSON transcript, indented, with one paragraph or word a line (a long recording
    has tens of thousands of words: fully indented, the file would be three times larger)."""
    document = transcript_document(transcript, title)
    lines = ["{"]
    for index, (key, value) in enumerate(document.items()):
        comma = "," if index + 1 < len(document) else ""
        head = f"  {_dumps(key)}: "
        if isinstance(value, list) and value:
            rows = [f"    {_dumps(item)}" for item in value]
            lines.append(head + "[\n" + ",\n".join(rows) + "\n  ]" + comma)
        elif isinstance(value, dict) and value:
            rows = [f"    {_dumps(k)}: {_dumps(v)}" for k, v in value.items()]
            lines.append(head + "{\n" + ",\n".join(rows) + "\n  }" + comma)
        else:
            lines.append(head + _dumps(value) + comma)
    return "\n".join(lines) + "\n}\n"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


_STYLE = """\
body { font: 1rem/1.6 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; background: #fff; }
h1 { font-size: 1.5rem; }
section { margin: 0 0 1.25rem; }
cite { font-style: normal; font-weight: 600; margin-right: .5rem; }
time { color: #666; font-variant-numeric: tabular-nums; font-size: .9rem; }
p { margin: .25rem 0 0; }
@media (prefers-color-scheme: dark) { body { color: #ddd; background: #161616; }
  time { color: #999; } }"""


def _duration(ms: int) -> str:
    """An HTML valid duration string, e.g. ``PT754.3S``."""
    secs, millis = divmod(ms, 1000)
    return f"PT{secs}.{millis:03d}S" if millis else f"PT{secs}S"


def render_html(transcript: Transcript, title: str) -> str:
    """A self-contained page, valid HTML5 and well-formed XML (see the module docstring).

    The language of the speech is not known (Cleanvoice detects it and does not say), so
    the page is marked ``lang="und"`` (undetermined).
    """

    def escape(text: str) -> str:
        return html.escape(text, quote=False)

    parts = [
        "<!DOCTYPE html>",
        '<html xmlns="http://www.w3.org/1999/xhtml" lang="und" xml:lang="und">',
        "<head>",
        '<meta charset="utf-8"/>',
        '<meta name="viewport" content="width=device-width, initial-scale=1"/>',
        '<meta name="generator" content="cvsyncd"/>',
        f"<title>{escape(title)}</title>",
        f"<style>\n{_STYLE}\n</style>",
        "</head>",
        "<body>",
        "<main>",
        f"<h1>{escape(title)}</h1>",
    ]
    for paragraph in transcript.paragraphs:
        name = transcript.name(paragraph.speaker)
        parts.append("<section>")
        if name:
            parts.append(f"<cite>{escape(name)}:</cite>")
        parts.append(f'<time datetime="{_duration(paragraph.start)}">{hms(paragraph.start)}</time>')
        parts.append(f"<p>{escape(paragraph.text)}</p>")
        parts.append("</section>")
    parts += ["</main>", "</body>", "</html>", ""]
    return "\n".join(parts)
