"""Keeping secrets out of text: the API key and the query strings of signed URLs.

A signed URL's query string is a credential (anyone holding it may write or read the
object), so every URL that reaches a log, the database or an error message goes through
``redact_url`` first, and free text through ``scrub``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

REDACTED = "REDACTED"

# a URL with a query string or fragment; the query part is what must not leak
# the scheme is bounded in length so that a long run of letters costs linear time, not
# quadratic (every start position would otherwise scan the whole run)
_URL_WITH_QUERY = re.compile(
    r"""(?P<base>\b[a-zA-Z][a-zA-Z0-9+.-]{0,15}://[^\s?#"'<>]+)[?#][^\s"'<>]*"""
)

_known_secrets: set[str] = set()


def register_secret(secret: str) -> None:
    """Remember a secret (the API key) so that ``scrub`` removes it from any text."""
    if secret and len(secret) >= 4:
        _known_secrets.add(secret)


def redact_url(url: str) -> str:
    """Return ``url`` without its query string and fragment (marked as redacted)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    if not parts.query and not parts.fragment:
        return url
    return urlunsplit((parts.scheme, parts.netloc, parts.path, REDACTED, ""))


def strip_query(url: str) -> str:
    """Return ``url`` without query and fragment: the file URL of a signed upload URL."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove known secrets and the query strings of URLs from free text."""
    text = _URL_WITH_QUERY.sub(lambda m: f"{m.group('base')}?{REDACTED}", text)
    for secret in (*_known_secrets, *secrets):
        if secret:
            text = text.replace(secret, REDACTED)
    return text
