"""Presigned storage URLs in the shape of S3/R2 ``X-Amz-*`` query strings.

The real service hands out presigned URLs for the upload PUT and for every result file.
Clients must treat them as opaque credentials that expire; the emulator checks them for
real (HMAC-SHA256 with a per-server secret over method, path, date and lifetime), so a
client that edits, reuses for the wrong method, or keeps a URL too long gets the same 403
it would get from the real bucket.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from calendar import timegm
from collections.abc import Callable, Mapping
from enum import Enum
from urllib.parse import urlencode

ALGORITHM = "AWS4-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_EXPIRES = 7 * 24 * 3600  # the S3 limit for presigned URLs


class Verdict(Enum):
    """The outcome of checking a presigned URL."""

    OK = "ok"
    MISSING = "missing"  # not a presigned request at all
    MISMATCH = "mismatch"  # altered, or used with another method or path
    EXPIRED = "expired"


def _format_date(epoch: float) -> str:
    return time.strftime(DATE_FORMAT, time.gmtime(epoch))


def _parse_date(text: str) -> float | None:
    try:
        return float(timegm(time.strptime(text, DATE_FORMAT)))
    except ValueError:
        return None


class UrlSigner:
    """Makes and checks presigned query strings for one emulator instance."""

    def __init__(self, secret: bytes | None = None, clock: Callable[[], float] = time.time):
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._clock = clock

    def _signature(self, method: str, path: str, date: str, expires: str) -> str:
        message = f"{method.upper()}\n{path}\n{date}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def sign(self, method: str, path: str, *, expires: int = 3600, now: float | None = None) -> str:
        """Given a method and an unquoted path, return the presigned query string."""
        date = _format_date(self._clock() if now is None else now)
        return urlencode(
            {
                "X-Amz-Algorithm": ALGORITHM,
                "X-Amz-Date": date,
                "X-Amz-Expires": str(expires),
                "X-Amz-SignedHeaders": "host",
                "X-Amz-Signature": self._signature(method, path, date, str(expires)),
            }
        )

    def verify(self, method: str, path: str, query: Mapping[str, list[str]]) -> Verdict:
        """Check the presigned query of a request for ``method`` on the unquoted ``path``."""
        values = {key: items[0] for key, items in query.items() if items}
        signature = values.get("X-Amz-Signature")
        date = values.get("X-Amz-Date", "")
        expires = values.get("X-Amz-Expires", "")
        if not signature:
            return Verdict.MISSING
        expected = self._signature(method, path, date, expires)
        if values.get("X-Amz-Algorithm") != ALGORITHM or not hmac.compare_digest(
            signature.encode(), expected.encode()
        ):
            return Verdict.MISMATCH
        signed_at = _parse_date(date)
        if signed_at is None or not expires.isdigit() or not 0 < int(expires) <= MAX_EXPIRES:
            return Verdict.MISMATCH
        if self._clock() > signed_at + int(expires):
            return Verdict.EXPIRED
        return Verdict.OK
