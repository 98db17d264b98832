"""Derived outputs: transcripts, subtitles, summaries, chapters, social posts, markers.

Pure functions, bytes out, no I/O: the pipeline asks :func:`derived_suffixes` which
files a result calls for, downloads the marker files named by :func:`marker_downloads`,
and writes whatever :func:`render` returns under ``<stem><suffix>``.

::

    render/
    ├── __init__.py     RenderContext, derived_suffixes, render, marker_downloads
    ├── transcript.py   the result's transcript as words and paragraphs with speakers
    ├── captions.py     .srt and .vtt: cutting words into readable cues
    ├── documents.py    .txt, .md, .json and .html transcripts
    ├── docx.py         .docx transcripts (a minimal OOXML package)
    ├── summary.py      .summary.md, .chapters.json, .chapters.txt, .social.md
    ├── markers.py      the Audacity label file → REAPER, Audition, a JSON cut list
    └── common.py       numbers, text and times, shared by all of them

The same input always gives the same bytes; text is UTF-8 with ``\\n`` line ends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cvsyncd.outbox.render import captions, documents, docx, markers, summary
from cvsyncd.outbox.render.common import clean_text
from cvsyncd.outbox.render.markers import marker_downloads
from cvsyncd.outbox.render.transcript import Transcript, has_transcript, read_transcript, speech_end

__all__ = [
    "MARKER_SUFFIXES",
    "SUMMARY_SUFFIXES",
    "TRANSCRIPT_FORMATS",
    "RenderContext",
    "derived_suffixes",
    "marker_downloads",
    "render",
]

TRANSCRIPT_FORMATS = ("txt", "srt", "vtt", "json", "md", "html", "docx")
SUMMARY_SUFFIXES = (".summary.md", ".chapters.json", ".chapters.txt")
SOCIAL_SUFFIX = ".social.md"
MARKER_SUFFIXES = (".markers.reaper.csv", ".markers.audition.csv", ".markers.cuts.json")


@dataclass(frozen=True)
class RenderContext:
    """What a renderer needs besides the result."""

    stem: str  # the output file stem, e.g. "ep12"
    title: str  # a human title, e.g. the input file name
    speakers: tuple[str, ...] = ()  # names for SPEAKER_00, SPEAKER_01, … (folder setting)
    track_names: tuple[str, ...] = ()  # multi-track: speaker i is track_names[i]
    # downloaded marker files by name (see marker_downloads), e.g. {"timeline_audacity": "…"}
    markers: Mapping[str, str] = field(default_factory=dict, hash=False)
    # what one render may share with the next of the same result (the parsed transcript)
    cache: dict[str, Any] = field(default_factory=dict, hash=False, compare=False, repr=False)

    @property
    def heading(self) -> str:
        return clean_text(self.title) or clean_text(self.stem) or "Transcript"


def derived_suffixes(
    result: Mapping[str, Any],
    transcript_formats: Sequence[str],
    marker_names: Sequence[str] | Mapping[str, str],
) -> list[str]:
    """Given a result, the folder's transcript formats and the downloaded marker files,
    return the suffixes of the files to render, in a stable order.

    - ``.transcript.<fmt>`` for each format, when the result has a transcript with at
      least one paragraph or word;
    - ``.summary.md``, then ``.chapters.json`` and ``.chapters.txt`` if there are chapters;
    - ``.social.md`` when there is at least one social post;
    - the three ``.markers.*`` files when one of the marker files is an Audacity label
      track: by name (``timeline_audacity``) or, when ``marker_names`` is the mapping of
      names to downloaded contents, by content.

    Fields not asked for come back from the API as ``[]`` or null: nothing for them.
    Raise ValueError for a transcript format cvsyncd does not know.
    """
    suffixes: list[str] = []
    unknown = [f for f in transcript_formats if f not in TRANSCRIPT_FORMATS]
    if unknown:
        raise ValueError(
            f"unknown transcript format {unknown[0]!r}; known: {', '.join(TRANSCRIPT_FORMATS)}"
        )
    if has_transcript(result):
        for fmt in dict.fromkeys(transcript_formats):
            suffixes.append(f".transcript.{fmt}")
    if summary.summarization(result) is not None:
        suffixes.append(".summary.md")
        if summary.read_chapters(result):
            suffixes += [".chapters.json", ".chapters.txt"]
    if summary.has_social(result):
        suffixes.append(SOCIAL_SUFFIX)
    if _has_label_track(marker_names):
        suffixes += MARKER_SUFFIXES
    return suffixes


def _has_label_track(marker_names: Sequence[str] | Mapping[str, str]) -> bool:
    if isinstance(marker_names, Mapping):
        return markers.find_label_track(marker_names) is not None
    return markers.AUDACITY_NAME in marker_names


def render(suffix: str, result: Mapping[str, Any], context: RenderContext) -> bytes:
    """Return the content of ``<stem><suffix>`` for ``result``.

    Raise ValueError, with a plain message, if the suffix is unknown or the result lacks
    what it needs (no transcript, no summary, no chapters, no label file).
    """
    if suffix.startswith(".transcript."):
        fmt = suffix.removeprefix(".transcript.")
        transcript_renderer = _TRANSCRIPTS.get(fmt)
        if transcript_renderer is None:
            raise ValueError(f"unknown output {suffix!r}")
        transcript = _transcript(result, context)
        output = transcript_renderer(transcript, context.heading)
    elif suffix in _OTHERS:
        output = _OTHERS[suffix](result, context)
    else:
        raise ValueError(f"unknown output {suffix!r}")
    return output if isinstance(output, bytes) else output.encode("utf-8")


def _transcript(result: Mapping[str, Any], context: RenderContext) -> Transcript:
    """The result's transcript, read once for all the formats rendered with one context
    (reading a long one costs seconds); the context holds it, and drops it with itself."""
    held = context.cache.get("transcript")
    if held is not None and held[0] is result:
        return held[1]
    transcript = read_transcript(result, context.speakers, context.track_names)
    context.cache["transcript"] = (result, transcript)
    return transcript


_TRANSCRIPTS: Mapping[str, Callable[[Transcript, str], str | bytes]] = {
    "txt": lambda t, title: documents.render_txt(t),
    "srt": lambda t, title: captions.render_srt(t),
    "vtt": captions.render_vtt,
    "json": documents.render_json,
    "md": documents.render_md,
    "html": documents.render_html,
    "docx": docx.render_docx,
}

_OTHERS: Mapping[str, Callable[[Mapping[str, Any], RenderContext], str]] = {
    ".summary.md": lambda r, c: summary.render_summary_md(r, c.heading, speech_end(r)),
    ".chapters.json": lambda r, c: summary.render_chapters_json(r, c.heading, speech_end(r)),
    ".chapters.txt": lambda r, c: summary.render_chapters_txt(r, speech_end(r)),
    ".social.md": lambda r, c: summary.render_social_md(r, c.heading),
    ".markers.reaper.csv": lambda r, c: markers.render_reaper_csv(c.markers),
    ".markers.audition.csv": lambda r, c: markers.render_audition_csv(c.markers),
    ".markers.cuts.json": lambda r, c: markers.render_cuts_json(c.markers),
}
