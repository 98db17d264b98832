"""Keeping secrets out of text: the API key and the query strings of signed URLs.

A signed URL's query string is a credential (anyone holding it may write or read the
object), so every URL that reaches a log, the database or an error message goes through
``redact_url`` first, and free text through ``scrub``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REDACTED = "REDACTED"

# a URL with a query string or fragment; the query part is what must not leak
# the scheme is bounded in length so that a long run of letters costs linear time, not
# quadratic (every start position would otherwise scan the whole run)
_URL_WITH_QUERY = re.compile(
    r"""(?P<base>\b[a-zA-Z][a-zA-Z0-9+.-]{0,15}://[^\s?#"'<>]+)[?#][^\s"'<>]*"""
)

MIN_SECRET = 8  # shorter text is never taken for a secret (apikey.py refuses such keys)
# a secret is replaced wherever it is not part of a longer run of letters and digits
_TOKEN = r"[A-Za-z0-9]"

_known_secrets: dict[str, re.Pattern[str]] = {}


def _pattern(secret: str) -> re.Pattern[str]:
    return re.compile(f"(?<!{_TOKEN}){re.escape(secret)}(?!{_TOKEN})")


def register_secret(secret: str) -> None:
    """Remember a secret (the API key) so that ``scrub`` removes it from any text."""
    if secret and len(secret) >= MIN_SECRET and secret not in _known_secrets:
        _known_secrets[secret] = _pattern(secret)


def redact_url(url: str) -> str:
    """Return ``url`` without its query string and fragment (marked as redacted)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    if not parts.query and not parts.fragment:
        return url
    return urlunsplit((parts.scheme, parts.netloc, parts.path, REDACTED, ""))


# options of a preset whose value is a signed URL: sent to Cleanvoice whole, shown redacted
URL_OPTIONS = frozenset({"signed_url"})


def shown_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """A job's options as they may be shown or written out: signed URLs without their query."""
    return {
        k: redact_url(v) if k in URL_OPTIONS and isinstance(v, str) else v
        for k, v in options.items()
    }


def strip_query(url: str) -> str:
    """Return ``url`` without query and fragment: the file URL of a signed upload URL."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove known secrets and the query strings of URLs from free text.

    A secret is replaced where it stands as a whole token (``key=SECRET``, ``"SECRET"``),
    not inside a longer word, and only if it is at least MIN_SECRET characters long: a
    short key must not turn unrelated words into REDACTED.
    """
    text = _URL_WITH_QUERY.sub(lambda m: f"{m.group('base')}?{REDACTED}", text)
    patterns = list(_known_secrets.values())
    patterns += [_pattern(s) for s in secrets if s and len(s) >= MIN_SECRET]
    for pattern in patterns:
        text = pattern.sub(REDACTED, text)
    return text
