"""Telling the outside world that a job ended: the signed webhook (``notify_url``).

A POST of the event's JSON. With a secret, it is signed::

    X-Cvsyncd-Timestamp: 1732611200
    X-Cvsyncd-Signature: sha256=<hex HMAC-SHA256(secret, b"1732611200." + body)>

The timestamp is part of the signed message, so a receiver that checks it (see
:func:`verify_signature`) refuses a replayed request. Connection errors, timeouts, 408,
429 and 5xx are retried with the one back-off policy (``cvsyncd/retry.py``), honouring
``Retry-After``; other answers are final. Redirects are never followed (they would carry
the signature elsewhere). Only ``https://`` is used, except to a loopback address. The
URL's query string, which may hold a token, never appears in a log line or a Report.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import structlog

from cvsyncd import __version__
from cvsyncd import events as ev
from cvsyncd.errors import ConfigError, Problem
from cvsyncd.notify.message import Event, Report
from cvsyncd.redact import scrub
from cvsyncd.retry import backoff_delay, parse_retry_after
from cvsyncd.urls import is_loopback

EVENT_HEADER = "X-Cvsyncd-Event"
TIMESTAMP_HEADER = "X-Cvsyncd-Timestamp"
SIGNATURE_HEADER = "X-Cvsyncd-Signature"
DELIVERY_HEADER = "X-Cvsyncd-Delivery"  # the same on every attempt: receivers can dedupe
SIGNATURE_TOLERANCE = 300.0  # seconds a receiver should accept a timestamp off its clock
RETRY_STATUSES = frozenset({408, 429})  # and every 5xx
MAX_RETRY_AFTER = 300.0  # a server asking for a longer wait gets no further attempt


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """Return the ``X-Cvsyncd-Signature`` value for a request."""
    digest = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify_signature(
    secret: bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    now: float | None = None,
    tolerance: float = SIGNATURE_TOLERANCE,
) -> bool:
    """What a receiver does: given the shared secret, the ``X-Cvsyncd-Timestamp`` and
    ``X-Cvsyncd-Signature`` headers and the raw body, return whether the request is
    authentic and fresh (its timestamp within ``tolerance`` seconds of ``now``)."""
    if not timestamp.isascii() or not timestamp.isdigit():
        return False
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > tolerance:
        return False
    expected = sign(secret, timestamp, body).encode("ascii")
    return hmac.compare_digest(expected, signature.strip().encode("utf-8", errors="replace"))


def display_url(url: str) -> str:
    """``url`` as it may be shown: without user name, password, query and fragment."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(invalid URL)"
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"


def check_webhook_url(url: str) -> str | None:
    """Return why cvsyncd will not send to ``url``, or None if it will."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "not a valid URL"
    if parts.scheme == "https" and host:
        return None
    if parts.scheme == "http" and host and is_loopback(host):
        return None
    return "not an https:// URL (http:// only to this machine)"


async def send_webhook(
    url: str,
    event: Event,
    *,
    secret: bytes | None,
    timeout: float,
    client: httpx.AsyncClient | None = None,
    attempts: int = 4,
    backoff: float = 2.0,
    max_backoff: float = 60.0,
) -> Report:
    """POST ``event`` to ``url`` (see the module docstring) and return how it went.

    ``backoff`` is the wait before the second attempt; it doubles each time, up to
    ``max_backoff``, each wait drawn between half of it and all of it.
    """
    shown = display_url(url)
    log = structlog.get_logger("cvsyncd.notify").bind(
        url=shown, notify_event=event.kind, job=event.job_id
    )
    refusal = check_webhook_url(url)
    if refusal is not None:
        log.warning(ev.WEBHOOK_REFUSED, reason=refusal)
        return Report("webhook", False, 0, f"{shown}: {refusal}")
    hidden = [part for part in _url_secrets(url) if part]
    if secret:
        hidden.append(secret.decode("utf-8", errors="replace"))
    body = event.to_json()
    delivery_id = uuid.uuid4().hex
    own_client = client is None
    http = client or httpx.AsyncClient(timeout=timeout, follow_redirects=False)
    detail = ""
    attempt = 0
    try:
        for attempt in range(1, max(attempts, 1) + 1):
            retry, wait, detail = await _post(http, url, body, event, secret, delivery_id, timeout)
            detail = scrub(f"{detail} from {shown}", hidden)
            if retry is None:
                log.info(ev.WEBHOOK_DELIVERED, attempts=attempt, detail=detail)
                return Report("webhook", True, attempt, detail)
            if not retry or attempt >= attempts:
                break
            if wait is not None and wait > MAX_RETRY_AFTER:
                detail += f" (asked to retry after {wait:g} s: gave up)"
                break
            if wait is None:
                wait = backoff_delay(attempt, base=backoff, cap=max_backoff)
            log.warning(ev.WEBHOOK_RETRY, attempt=attempt, detail=detail, wait=round(wait, 3))
            await asyncio.sleep(wait)
    finally:
        if own_client:
            await http.aclose()
    log.warning(ev.WEBHOOK_FAILED, attempts=attempt, detail=detail)
    return Report("webhook", False, attempt, detail)


async def _post(
    http: httpx.AsyncClient,
    url: str,
    body: bytes,
    event: Event,
    secret: bytes | None,
    delivery_id: str,
    timeout: float,
) -> tuple[bool | None, float | None, str]:
    """One attempt. Return (None if delivered, else whether to retry; the server's
    Retry-After in seconds; what happened)."""
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"cvsyncd/{__version__}",
        EVENT_HEADER: event.kind,
        TIMESTAMP_HEADER: timestamp,
        DELIVERY_HEADER: delivery_id,
    }
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
    try:
        # streamed and closed unread: a receiver's answer body is of no interest
        async with http.stream(
            "POST", url, content=body, headers=headers, timeout=timeout, follow_redirects=False
        ) as response:
            status = response.status_code
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
    except httpx.TransportError as error:  # connection trouble and timeouts
        return True, None, f"{type(error).__name__}: {error}".rstrip(": ")
    except httpx.HTTPError as error:
        return False, None, f"{type(error).__name__}: {error}".rstrip(": ")
    if 200 <= status < 300:
        return None, None, f"HTTP {status}"
    if 300 <= status < 400:
        return False, None, f"HTTP {status} (redirects are not followed)"
    return status in RETRY_STATUSES or status >= 500, retry_after, f"HTTP {status}"


def _url_secrets(url: str) -> list[str]:
    """The parts of a URL that may be credentials: query, fragment, user info."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    return [parts.query, parts.fragment, parts.password or "", parts.username or ""]


# -- the secret ---------------------------------------------------------------------------


def read_secret(path: Path) -> bytes:
    """Return the webhook signing secret held in ``path``, surrounding whitespace removed.

    Raise ConfigError if the file cannot be read, is empty, or may be read by users other
    than its owner (like the API key file, it must be mode 0600 or stricter).
    """

    def problem(message: str, valid: str = "") -> ConfigError:
        return ConfigError([Problem(str(path), "", message, valid)])

    try:
        with open(path, "rb") as stream:
            mode = os.fstat(stream.fileno()).st_mode
            if mode & 0o044:
                raise problem(
                    f"the webhook secret file can be read by other users (mode {mode & 0o777:04o}),"
                    " so it is not used",
                    f"chmod 600 {path}",
                )
            secret = stream.read().strip()
    except OSError as error:
        raise problem(f"cannot read the webhook secret file: {error.strerror}") from None
    if not secret:
        raise problem("the webhook secret file is empty", "a file holding the secret, mode 0600")
    return secret
