"""Where the shared store is: the PostgreSQL URL, its password and this daemon's site.

Kept apart from ``postgres.py`` so that the rest of cvsyncd can name it without psycopg.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit


@dataclass(frozen=True)
class SharedStore:
    """The ``[store]`` section, resolved: a URL without password, the password apart."""

    url: str
    site: str
    password: str | None = field(default=None, repr=False)
    # the longest a daemon frozen or cut off mid-transaction keeps other sites waiting
    lease_seconds: float = 15.0

    @property
    def shown_url(self) -> str:
        """The URL as logs and errors show it: any password in it replaced by ***."""
        return redact_url(self.url)


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
