"""Small helpers shared by the renderers: reading numbers from a result, cleaning text,
and writing times.

Every time is turned into whole milliseconds once (:func:`to_ms`) so that all formats
round the same way and the same input always yields the same bytes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

# characters XML 1.0 forbids (HTML, DOCX) and that have no business in a text file anyway
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
_SPACE = re.compile(r"\s+")


def seconds(value: Any) -> float | None:
    """Return ``value`` as a finite, non-negative number of seconds, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return float(value)


def to_ms(value: float) -> int:
    """Return seconds as whole milliseconds (half up, so 0.0005 → 1)."""
    return math.floor(value * 1000 + 0.5)


def clean_text(value: Any) -> str:
    """Return ``value`` as one line of text: control characters dropped, whitespace collapsed."""
    if not isinstance(value, str):
        return ""
    return _SPACE.sub(" ", _CONTROL.sub("", value)).strip()


def clean_block(value: Any) -> str:
    """Return a multi-line text: control characters dropped, ``\\r\\n`` → ``\\n``,
    trailing spaces and surplus blank lines removed. Lists of strings are joined by
    blank lines (``summaries`` and threads come either way)."""
    if isinstance(value, list):
        parts = [clean_block(item) for item in value]
        return "\n\n".join(part for part in parts if part)
    if not isinstance(value, str):
        return ""
    text = _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))
    lines = [line.rstrip() for line in text.split("\n")]
    text = "\n".join(lines).strip("\n")
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def hms(ms: int) -> str:
    """``HH:MM:SS`` (the seconds cut, not rounded: a chapter at 59.9 s is in minute 0)."""
    total = ms // 1000
    return f"{total // 3600:02d}:{total // 60 % 60:02d}:{total % 60:02d}"


def hms_ms(ms: int, separator: str = ".") -> str:
    """``HH:MM:SS.mmm`` (``,`` as separator for SubRip)."""
    return f"{hms(ms)}{separator}{ms % 1000:03d}"


def short_time(ms: int) -> str:
    """``M:SS.mmm``, or ``H:MM:SS.mmm`` from one hour on (Adobe Audition, REAPER)."""
    total, millis = divmod(ms, 1000)
    hours, minutes, secs = total // 3600, total // 60 % 60, total % 60
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}.{millis:03d}"
    return f"{minutes}:{secs:02d}.{millis:03d}"


def json_seconds(ms: int) -> int | float:
    """Seconds for a JSON document: ``12`` rather than ``12.0``, else three decimals."""
    return ms // 1000 if ms % 1000 == 0 else round(ms / 1000, 3)


def mapping(value: Any) -> Mapping[str, Any] | None:
    """Return ``value`` if it is a non-empty mapping (the API sends ``[]`` or null instead)."""
    return value if isinstance(value, Mapping) and value else None


def items(value: Any) -> Sequence[Any]:
    """Return ``value`` if it is a list, else an empty tuple."""
    return value if isinstance(value, list) else ()
