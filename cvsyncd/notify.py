"""Telling the outside world that a job ended: a hook command and a signed webhook.

Both are best effort. Neither may block or fail the pipeline, so every function here
returns a :class:`Delivery` saying what happened and raises nothing for a failure of the
other side (a missing program, a non-zero exit, a refused connection, an HTTP error).

**The hook** (``on_done`` / ``on_failed``) is an argv list run without a shell, in a new
session (its own process group), with the event in environment variables and as JSON on
stdin. It does not inherit the systemd variables meant for the daemon (``NOTIFY_SOCKET``,
``WATCHDOG_*``, ``LISTEN_*``) nor the API key. After ``timeout`` seconds its whole process
group gets SIGTERM, and SIGKILL a second later. Its output is kept up to
``OUTPUT_LIMIT`` bytes a stream and logged.

**The webhook** (``notify_url``) is a POST of the same JSON. With a secret, it is signed::

    X-Cvsyncd-Timestamp: 1732611200
    X-Cvsyncd-Signature: sha256=<hex HMAC-SHA256(secret, b"1732611200." + body)>

The timestamp is part of the signed message, so a receiver that checks it (see
:func:`verify_signature`) refuses a replayed request. Connection errors, timeouts, 408,
429 and 5xx are retried with exponential backoff and jitter, honouring ``Retry-After``;
other answers are final. Redirects are never followed (they would carry the signature
elsewhere). Only ``https://`` is used, except to a loopback address. The URL's query
string, which may hold a token, never appears in a log line or a Delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import hmac
import json
import os
import random
import signal
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog

from cvsyncd import __version__
from cvsyncd.apikey import API_KEY_VARIABLE
from cvsyncd.config import is_loopback
from cvsyncd.errors import ConfigError, Problem
from cvsyncd.redact import scrub
from cvsyncd.sdnotify import SYSTEMD_ONLY_VARIABLES

EVENT_KINDS = ("job.done", "job.failed", "job.needs_attention")
EVENT_HEADER = "X-Cvsyncd-Event"
TIMESTAMP_HEADER = "X-Cvsyncd-Timestamp"
SIGNATURE_HEADER = "X-Cvsyncd-Signature"
DELIVERY_HEADER = "X-Cvsyncd-Delivery"  # the same on every attempt: receivers can dedupe
SIGNATURE_TOLERANCE = 300.0  # seconds a receiver should accept a timestamp off its clock

OUTPUT_LIMIT = 16 * 1024  # bytes of a hook's stdout and of its stderr that are kept
LOGGED_OUTPUT = 2000  # characters of each shown in the log
KILL_GRACE = 1.0  # seconds between SIGTERM and SIGKILL
# what the daemon's own environment holds that a hook must not get: systemd's
# notification socket, watchdog and socket activation meant for the daemon, the API key
# the daemon's own: systemd's notification and socket variables, the key and where the
# key's credential lives — a hook must not talk to systemd for us, nor find the key
DROPPED_VARIABLES = (*SYSTEMD_ONLY_VARIABLES, API_KEY_VARIABLE, "CREDENTIALS_DIRECTORY")

RETRY_STATUSES = frozenset({408, 429})  # and every 5xx
MAX_RETRY_AFTER = 300.0  # a server asking for a longer wait gets no further attempt


@dataclass(frozen=True)
class Event:
    """What happened to a job, as hooks and webhooks receive it."""

    kind: str  # "job.done" | "job.failed" | "job.needs_attention"
    job_id: int
    state: str
    folder: str  # the inbox path
    input: str  # the input's relative path
    outputs: tuple[str, ...]  # absolute output paths
    error: str | None
    at: float  # unix time

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document["outputs"] = list(self.outputs)
        document["time"] = datetime.fromtimestamp(self.at, UTC).isoformat(timespec="seconds")
        return {"version": 1, **document}

    def to_json(self) -> bytes:
        """The JSON document sent to webhooks and given to hooks on stdin (UTF-8)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Delivery:
    """The outcome of one notification."""

    target: str  # "command" or "webhook"
    ok: bool
    attempts: int
    detail: str  # exit code / HTTP status / error; no secrets, the URL without its query


# -- the hook command -------------------------------------------------------------------


def hook_environment(event: Event, base: Mapping[str, str]) -> dict[str, str]:
    """Return the environment of a hook: ``base`` without the daemon's own variables, plus
    the event (``CVSYNCD_*``)."""
    env = {key: value for key, value in base.items() if key not in DROPPED_VARIABLES}
    env.update(
        {
            "CVSYNCD_EVENT": event.kind,
            "CVSYNCD_JOB_ID": str(event.job_id),
            "CVSYNCD_STATE": event.state,
            "CVSYNCD_FOLDER": event.folder,
            "CVSYNCD_INPUT": event.input,
            "CVSYNCD_OUTPUTS": "\n".join(event.outputs),
            "CVSYNCD_ERROR": event.error or "",
        }
    )
    return {key: value.replace("\x00", "") for key, value in env.items()}


async def run_command(
    argv: Sequence[str], event: Event, *, timeout: float, env: Mapping[str, str] | None = None
) -> Delivery:
    """Run a hook for ``event`` (see the module docstring) and return how it went.

    ``env`` is the environment to start from (default: the daemon's). A program that
    cannot be started, a non-zero exit or a timeout is a failed Delivery.
    """
    log = structlog.get_logger("cvsyncd.notify").bind(
        hook=argv[0] if argv else "", notify_event=event.kind, job=event.job_id
    )
    if not argv:
        return Delivery("command", False, 0, "no command given")
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=hook_environment(event, os.environ if env is None else env),
            start_new_session=True,
        )
    except (OSError, ValueError) as error:
        detail = f"cannot run {argv[0]}: {getattr(error, 'strerror', None) or error}"
        log.warning("hook_not_started", detail=detail)
        return Delivery("command", False, 1, scrub(detail))
    work = asyncio.gather(
        _feed(process, event.to_json()),
        _capture(process.stdout),
        _capture(process.stderr),
        process.wait(),
    )
    timed_out = False
    try:
        try:
            _, out, err, code = await asyncio.wait_for(asyncio.shield(work), timeout)
        except TimeoutError:
            timed_out = True
            _, out, err, code = await _stop(process, work)
    except asyncio.CancelledError:  # the daemon is stopping: leave nothing behind
        await _stop(process, work)
        raise
    if timed_out:
        if process.returncode is None or process.returncode < 0:
            detail = f"killed after the {timeout:g} s timeout"
        else:
            detail = (
                f"exit {process.returncode}, but processes it started kept its output open "
                f"past the {timeout:g} s timeout: killed"
            )
        ok = False
    else:
        ok = code == 0
        detail = f"exit {code}" if code >= 0 else f"killed by signal {-code}"
    fields = {"stdout": _show(out), "stderr": _show(err), "detail": detail}
    if ok:
        log.info("hook_done", **fields)
    else:
        log.warning("hook_failed", **fields)
    return Delivery("command", ok, 1, scrub(detail))


async def _feed(process: asyncio.subprocess.Process, body: bytes) -> None:
    """Write the event to the hook's stdin; a hook that does not read it is fine."""
    assert process.stdin is not None
    try:
        process.stdin.write(body)
        await process.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        process.stdin.close()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await process.stdin.wait_closed()


async def _capture(stream: asyncio.StreamReader | None) -> bytes:
    """Read a stream to its end, keeping its first OUTPUT_LIMIT bytes."""
    kept = bytearray()
    while stream is not None and (chunk := await stream.read(65536)):
        kept += chunk[: max(OUTPUT_LIMIT - len(kept), 0)]
    return bytes(kept)


async def _stop(
    process: asyncio.subprocess.Process, work: asyncio.Future[Any]
) -> tuple[Any, bytes, bytes, int]:
    """TERM, then KILL, the hook's process group, and collect what it wrote."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(asyncio.shield(work), KILL_GRACE)
    # something left the group and still holds the pipes: stop listening to it
    transport = getattr(process, "_transport", None)  # asyncio offers no public close
    if transport is not None:
        transport.close()
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await work
    return None, b"", b"", process.returncode if process.returncode is not None else -9


def _show(output: bytes) -> str:
    text = output.decode("utf-8", errors="replace").strip()
    return text if len(text) <= LOGGED_OUTPUT else text[:LOGGED_OUTPUT] + " …"


# -- the webhook ------------------------------------------------------------------------


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
) -> Delivery:
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
        log.warning("webhook_refused", reason=refusal)
        return Delivery("webhook", False, 0, f"{shown}: {refusal}")
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
                log.info("webhook_delivered", attempts=attempt, detail=detail)
                return Delivery("webhook", True, attempt, detail)
            if not retry or attempt >= attempts:
                break
            if wait is not None and wait > MAX_RETRY_AFTER:
                detail += f" (asked to retry after {wait:g} s: gave up)"
                break
            if wait is None:
                ceiling = min(backoff * 2 ** (attempt - 1), max_backoff)
                wait = random.uniform(ceiling / 2, ceiling)
            log.warning("webhook_retry", attempt=attempt, detail=detail, wait=round(wait, 3))
            await asyncio.sleep(wait)
    finally:
        if own_client:
            await http.aclose()
    log.warning("webhook_failed", attempts=attempt, detail=detail)
    return Delivery("webhook", False, attempt, detail)


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
            retry_after = _retry_after(response.headers.get("Retry-After"))
    except httpx.TransportError as error:  # connection trouble and timeouts
        return True, None, f"{type(error).__name__}: {error}".rstrip(": ")
    except httpx.HTTPError as error:
        return False, None, f"{type(error).__name__}: {error}".rstrip(": ")
    if 200 <= status < 300:
        return None, None, f"HTTP {status}"
    if 300 <= status < 400:
        return False, None, f"HTTP {status} (redirects are not followed)"
    return status in RETRY_STATUSES or status >= 500, retry_after, f"HTTP {status}"


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(when.timestamp() - time.time(), 0.0)


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
