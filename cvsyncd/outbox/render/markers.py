"""Edit markers: from the Audacity label file Cleanvoice sends to what DAWs import.

With ``export_timestamps``, a result names marker files in ``timestamps_markers_urls``.
The one in use, ``timeline_audacity``, is an Audacity label track: one label a line,
``start<TAB>end<TAB>LABEL`` in seconds, labels such as ``CUT_FILLER_SOUND`` (the edit
cut it) or ``MUTE_BREATH`` (the edit muted it). From it cvsyncd writes

- ``.markers.reaper.csv``: REAPER's region/marker list (``#,Name,Start,End,Length``);
  a label with a length is a region ``R1``…, one without a marker ``M1``…;
- ``.markers.audition.csv``: Adobe Audition's marker list (tab-separated, ``decimal``
  times, ``Cue`` markers);
- ``.markers.cuts.json``: the edits as data, ``[{start, end, kind, action, label}]``.

:func:`marker_downloads` turns ``timestamps_markers_urls`` into names safe for a file
name and the URLs to fetch.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from cvsyncd.outbox.render.common import json_seconds, short_time, to_ms

AUDACITY_NAME = "timeline_audacity"
ACTIONS = {"CUT": "cut", "MUTE": "mute"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_ID_PREFIX = re.compile(r"[0-9a-fA-F]{8}[0-9a-fA-F-]*[_-]([A-Za-z].*)")
MAX_NAME = 64
# text formats a marker file may come in, kept as its extension (anything else is .txt)
MARKER_EXTENSIONS = frozenset({"txt", "json", "csv", "tsv", "xml", "edl", "srt", "vtt"})


@dataclass(frozen=True)
class Label:
    start: int  # milliseconds
    end: int
    text: str


def parse_labels(text: str) -> list[Label]:
    """Return the labels of an Audacity label file, sorted by time.

    A byte order mark, blank lines, ``\\r\\n`` line ends and the frequency lines of
    spectral labels (they start with ``\\``) are accepted. Raise ValueError naming the
    first line that is not ``start<TAB>end[<TAB>label]``.
    """
    labels = []
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("\\"):
            continue
        fields = line.split("\t")
        times = [_number(field) for field in fields[:2]]
        if len(fields) < 2 or None in times:
            raise ValueError(f"line {number} of the label file is not start<TAB>end<TAB>label")
        start, end = (to_ms(t) for t in times if t is not None)
        label = "\t".join(fields[2:]).strip()
        labels.append(Label(min(start, end), max(start, end), label))
    return sorted(labels, key=lambda label: (label.start, label.end))


def _number(field: str) -> float | None:
    try:
        value = float(field.strip().replace(",", "."))  # a decimal comma from some locales
    except ValueError:
        return None
    return value if value >= 0 and value != float("inf") else None


def is_label_track(text: str) -> bool:
    """Whether ``text`` is an Audacity label file with at least one label."""
    try:
        return bool(parse_labels(text))
    except ValueError:
        return False


def find_label_track(markers: Mapping[str, str]) -> str | None:
    """Return the label file among downloaded marker files: ``timeline_audacity`` first,
    else the first whose content is a label track."""
    if AUDACITY_NAME in markers:
        return markers[AUDACITY_NAME]
    for name in sorted(markers):
        if is_label_track(markers[name]):
            return markers[name]
    return None


def _labels(markers: Mapping[str, str]) -> list[Label]:
    text = find_label_track(markers)
    if text is None:
        raise ValueError("no Audacity label file among the downloaded marker files")
    return parse_labels(text)


def render_reaper_csv(markers: Mapping[str, str]) -> str:
    """REAPER's region/marker CSV; times as ``H:MM:SS.mmm`` (hours always written)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["#", "Name", "Start", "End", "Length"])
    regions = points = 0
    for label in _labels(markers):
        if label.end > label.start:
            regions += 1
            writer.writerow(
                [
                    f"R{regions}",
                    label.text,
                    _reaper_time(label.start),
                    _reaper_time(label.end),
                    _reaper_time(label.end - label.start),
                ]
            )
        else:
            points += 1
            writer.writerow([f"M{points}", label.text, _reaper_time(label.start), "", ""])
    return out.getvalue()


def _reaper_time(ms: int) -> str:
    total, millis = divmod(ms, 1000)
    return f"{total // 3600}:{total // 60 % 60:02d}:{total % 60:02d}.{millis:03d}"


def render_audition_csv(markers: Mapping[str, str]) -> str:
    """Adobe Audition's marker list: what its Markers panel exports and imports."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    writer.writerow(["Name", "Start", "Duration", "Time Format", "Type", "Description"])
    for label in _labels(markers):
        action, kind = edit_kind(label.text)
        description = f"{action} {kind.replace('_', ' ')}" if action else ""
        writer.writerow(
            [
                label.text,
                short_time(label.start),
                short_time(label.end - label.start),
                "decimal",
                "Cue",
                description,
            ]
        )
    return out.getvalue()


def edit_kind(label: str) -> tuple[str | None, str]:
    """``CUT_FILLER_SOUND`` → ("cut", "filler_sound"); a label that is no edit → (None, …)."""
    head, _, rest = label.partition("_")
    action = ACTIONS.get(head.upper())
    if action is None or not rest:
        return None, label.lower()
    return action, rest.lower()


def render_cuts_json(markers: Mapping[str, str]) -> str:
    """The edits as JSON: ``[{start, end, kind, action, label}]``, seconds, by start."""
    cuts = []
    for label in _labels(markers):
        action, kind = edit_kind(label.text)
        if action is not None:
            cuts.append(
                {
                    "start": json_seconds(label.start),
                    "end": json_seconds(label.end),
                    "kind": kind,
                    "action": action,
                    "label": label.text,
                }
            )
    return json.dumps(cuts, indent=2, ensure_ascii=False) + "\n"


def _is_web_url(url: Any) -> bool:
    if not isinstance(url, str):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def safe_name(name: str) -> str:
    """Return ``name`` with everything but ``A-Z a-z 0-9 _ -`` replaced by ``_``.

    The result never holds ``/``, ``..`` or NUL; it may be empty."""
    return _UNSAFE.sub("_", name).strip("_")[:MAX_NAME]


def marker_downloads(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Return ``(name, url)`` for each marker file of a result.

    ``timestamps_markers_urls`` is a mapping name → URL, or a list of URLs, or empty. A
    listed URL is named after its file (``…/b309_timeline_audacity.txt`` is
    ``timeline_audacity``, ``…/timestamps.json`` is ``timestamps``), else by its place
    ("1", "2", …). Names are made safe for a file name (see :func:`safe_name`) and
    unique; entries that are not http(s) URLs are left out.
    """
    value = result.get("timestamps_markers_urls")
    if isinstance(value, Mapping):
        entries = [(str(name), url) for name, url in value.items()]
    elif isinstance(value, list):
        entries = [(_name_in_url(url), url) for url in value]
    else:
        return []
    downloads: list[tuple[str, str]] = []
    taken: set[str] = set()
    for number, (name, url) in enumerate(entries, 1):
        if not _is_web_url(url):
            continue
        base = safe_name(name) or str(number)
        unique, count = base, 1
        while unique in taken:
            count += 1
            unique = f"{base}_{count}"
        taken.add(unique)
        downloads.append((unique, url))
    return downloads


def _name_in_url(url: Any) -> str:
    """The name a listed marker file goes by: a known name in its file name, or its stem."""
    if not isinstance(url, str):
        return ""
    try:
        path = urlsplit(url).path
    except ValueError:
        return ""
    stem = PurePosixPath(path).stem
    if AUDACITY_NAME in stem.lower():
        return AUDACITY_NAME
    named = _ID_PREFIX.fullmatch(stem)  # "<edit or file id>_timestamps": the name is the tail
    return (named.group(1) if named else stem)[:40]


def marker_extension(url: str) -> str:
    """The extension a downloaded marker file keeps: its own when it names a text format
    (``.json`` in the JS SDK's example), else ``txt``. Never anything a player would run."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return "txt"
    if path.endswith("/"):
        return "txt"
    suffix = PurePosixPath(path).suffix.lower().lstrip(".")
    return suffix if suffix in MARKER_EXTENSIONS else "txt"
