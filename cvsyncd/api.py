"""The Cleanvoice HTTP client: requests, results, and what every failure means.

One class, ``CleanvoiceClient``, owns two ``httpx`` clients: one for the API host, which
carries the ``X-API-Key`` header and never follows redirects (a redirect would carry the key
elsewhere), and one for signed upload and download URLs, which carries no credentials at
all. Every failure is classified here, once, into the kinds of ``errors.py``:

- transient: connection trouble, timeouts, 408/429/5xx — try again later;
- account: 401/403 from the API, 402, or any refusal that says the credit ran out — the
  key or the account is the problem, never the recording;
- permanent: the API refused this request (400/404/413/422 …);
- ambiguous: a create-edit was sent but its outcome is unknown (it may have been billed).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlsplit

import httpcore
import httpx
import structlog

from cvsyncd import __version__
from cvsyncd.answers import RUNNING_STATUSES as RUNNING_STATUSES
from cvsyncd.answers import (
    EditStatus,
    error_message,
    parse_edit_status,
    plain,
    says_insufficient_credits,
)
from cvsyncd.config import CleanvoiceSettings
from cvsyncd.errors import (
    AccountApiError,
    AmbiguousApiError,
    AnswerTooLarge,
    ApiError,
    PermanentApiError,
    TransientApiError,
)
from cvsyncd.ratelimit import RateLimiter
from cvsyncd.redact import redact_url, scrub, strip_query

BLOCK_SIZE = 1024 * 1024
# httpcore reads response bodies 64 KiB at a time, each read a trip through anyio and the
# event loop, while asyncio's transport receives up to 256 KiB at once: reading that much
# gives downloads about 1.4 times the throughput for 30 % less CPU (bench/transfer.py).
# It is a class constant of httpcore, not an option of a client.
if hasattr(httpcore.AsyncHTTP11Connection, "READ_NUM_BYTES"):
    httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = 256 * 1024
USER_AGENT = f"cvsyncd/{__version__}"
API_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=60.0, pool=30.0)
TRANSFER_TIMEOUT = httpx.Timeout(connect=15.0, read=120.0, write=120.0, pool=60.0)
DEFAULT_MAX_DOWNLOAD_BYTES = 50 * 1024**3
DEFAULT_MAX_ANSWER_BYTES = 32 * 1024**2  # about 75 hours of speech, transcribed word by word
API_DEADLINE = 120.0  # seconds one API call may take, answer included
MAX_EDIT_ID = 128
MIN_BYTES_PER_MINUTE = 32 * 1024  # a transfer slower than this over a minute is stalled
_EDIT_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_-]{{0,{MAX_EDIT_ID - 1}}}")
DEFAULT_LIMITS = {"submit": 30, "status": 300}  # requests a minute (docs/cleanvoice-api.md)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})

ProgressCallback = Callable[[int], None]


def backoff_delay(
    attempt: int, *, base: float = 5.0, cap: float = 900.0, retry_after: float | None = None
) -> float:
    """Return seconds to wait before retry number ``attempt`` (1-based).

    Exponential with full jitter between half and all of the step, never less than what
    the server asked for with ``Retry-After``.
    """
    step = min(cap, base * (2 ** max(attempt - 1, 0)))
    delay = random.uniform(step / 2, step)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def parse_retry_after(value: str | None) -> float | None:
    """Return the seconds of a ``Retry-After`` header (only the delta-seconds form)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def is_loopback_url(url: str) -> bool:
    return (urlsplit(url).hostname or "") in LOOPBACK_HOSTS


def is_edit_id(value: str) -> bool:
    """Whether ``value`` may be an edit id: the letters, digits, ``-`` and ``_`` of a UUID or
    similar, at most MAX_EDIT_ID of them. Nothing else ever goes into a URL path."""
    return _EDIT_ID.fullmatch(value) is not None


def check_transfer_url(url: str) -> None:
    """Refuse a signed URL that is not https (http is allowed only on loopback)."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback_url(url)):
        return
    raise PermanentApiError(
        f"refusing to transfer a file over {parts.scheme or 'no scheme'}: {redact_url(url)} "
        "(only https, or http to this machine for the emulator)"
    )


def client_for(settings: CleanvoiceSettings, api_key: str) -> CleanvoiceClient:
    """The client for a config's ``[cleanvoice]`` section: its URL, budgets and caps."""
    return CleanvoiceClient(
        settings.base_url,
        api_key,
        limits={
            "submit": settings.submit_requests_per_minute,
            "status": settings.status_requests_per_minute,
        },
        max_answer_bytes=int(settings.max_answer_mb * 2**20),
        max_download_bytes=int(settings.max_download_gb * 2**30),
        deadline=settings.request_deadline_seconds,
    )


class CleanvoiceClient:
    """Talks to the Cleanvoice API. Use as ``async with CleanvoiceClient(...) as client``."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        limits: Mapping[str, int] | None = None,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        deadline: float = API_DEADLINE,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self._key = api_key
        self.max_download_bytes = max_download_bytes
        self.max_answer_bytes = max_answer_bytes
        self.deadline = deadline
        self.limiter = RateLimiter(limits or DEFAULT_LIMITS)
        self.log = structlog.get_logger("cvsyncd.api")
        self._api = httpx.AsyncClient(
            headers={"X-API-Key": api_key, "User-Agent": USER_AGENT, "Accept": "application/json"},
            timeout=API_TIMEOUT,
            follow_redirects=False,
            transport=transport,
        )
        self._files = httpx.AsyncClient(
            headers={"User-Agent": USER_AGENT},
            timeout=TRANSFER_TIMEOUT,
            follow_redirects=True,
            max_redirects=5,
            event_hooks={"request": [_refuse_insecure_hop]},
            transport=transport,
        )

    async def __aenter__(self) -> CleanvoiceClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._api.aclose()
        await self._files.aclose()

    def set_api_key(self, api_key: str) -> None:
        """Use a new key from now on (the key file changed)."""
        self._key = api_key
        self._api.headers["X-API-Key"] = api_key

    async def reserve(self, budget: str) -> None:
        """Take one request from ``budget`` now, for a call made with ``reserved=True``.

        A create-edit reserves its place before its intent is written, so that waiting for
        the budget never happens while the job's outcome is recorded as unknown.
        """
        await self.limiter.acquire(budget)

    @property
    def account_url(self) -> str:
        """``/v1/account``: the only v1 call, next to the v2 base URL."""
        root = self.base_url[: -len("/v2")] if self.base_url.endswith("/v2") else self.base_url
        return f"{root}/v1/account"

    # -- API calls ----------------------------------------------------------------------

    async def request_upload_url(self, filename: str) -> str:
        """Return a signed URL to PUT ``filename``'s bytes to."""
        body = await self._call(
            "POST", f"{self.base_url}/upload", budget="submit", params={"filename": filename}
        )
        url = body.get("signedUrl") if isinstance(body, Mapping) else None
        if not isinstance(url, str) or not url:
            raise TransientApiError("the upload answer had no signedUrl")
        return url

    async def create_edit(
        self,
        files: Sequence[str],
        config: Mapping[str, Any],
        *,
        upload_type: str | None = None,
        template_id: int | None = None,
        reserved: bool = False,
    ) -> str:
        """Create an edit and return its id.

        ``template_id`` names a template saved in the Cleanvoice dashboard (it goes beside
        ``config``, in ``input``). Raise AmbiguousApiError when the request may have
        reached the API but no answer came back: the edit may exist (and be billed) or
        not. With ``reserved`` the request's place in the budget was taken beforehand
        (``reserve("submit")``).
        """
        payload: dict[str, Any] = {"files": list(files), "config": dict(config)}
        if upload_type:
            payload["upload_type"] = upload_type
        if template_id is not None:
            payload["template_id"] = template_id
        body = await self._call(
            "POST",
            f"{self.base_url}/edits",
            budget="submit",
            reserved=reserved,
            json={"input": payload},
            idempotent=False,
        )
        edit_id = body.get("id") if isinstance(body, Mapping) else None
        if not isinstance(edit_id, str) or not edit_id:
            raise AmbiguousApiError("the create-edit answer had no edit id")
        if not is_edit_id(edit_id):
            # the edit may well exist (and be billed), but this id goes into no URL
            raise AmbiguousApiError(
                "Cleanvoice answered with an edit id cvsyncd will not use in a URL "
                f"({plain(repr(edit_id), 80)}): an id is 1 to {MAX_EDIT_ID} letters, digits, "
                "'-' or '_'"
            )
        return edit_id

    async def get_edit(self, edit_id: str) -> EditStatus:
        """Poll an edit. Any odd answer (a redirect, 404, 410, a body without a status) is
        transient: a known edit is polled again until its retention runs out, never
        given up on one answer (RELIABILITY.md, promise 17)."""
        try:
            body = await self._call("GET", self._edit_url(edit_id), budget="status")
        except AnswerTooLarge:
            raise
        except PermanentApiError as exc:
            raise TransientApiError(
                f"{exc.message} (an odd answer for an edit that exists; asking again)",
                status=exc.status,
            ) from None
        if not isinstance(body, Mapping) or not isinstance(body.get("status"), str):
            raise TransientApiError("the edit status answer had no status")
        return parse_edit_status(body)  # answers.py reads every documented shape

    async def delete_edit(self, edit_id: str) -> None:
        await self._call("DELETE", self._edit_url(edit_id), budget="status")

    def _edit_url(self, edit_id: str) -> str:
        if not is_edit_id(edit_id):
            raise PermanentApiError(f"refusing to use {plain(repr(edit_id), 80)} as an edit id")
        return f"{self.base_url}/edits/{quote(edit_id, safe='')}"

    async def account(self) -> Mapping[str, Any]:
        body = await self._call("GET", self.account_url, budget="status")
        if not isinstance(body, Mapping):
            raise TransientApiError("the account answer was not a JSON object")
        return body

    async def _call(
        self,
        method: str,
        url: str,
        *,
        budget: str,
        reserved: bool = False,
        idempotent: bool = True,
        **kwargs: Any,
    ) -> Any:
        """Send one API request within ``budget`` and return its JSON body, or raise a
        classified ApiError.

        The whole call, answer included, must end within ``self.deadline`` seconds (a
        server that trickles a byte every few seconds is a timeout like any other), and
        no more than ``self.max_answer_bytes`` of answer are read (AnswerTooLarge past it).
        """
        if not reserved:
            await self.limiter.acquire(budget)
        what = f"{method} {urlsplit(url).path}"
        try:
            async with asyncio.timeout(self.deadline):
                async with self._api.stream(method, url, **kwargs) as response:
                    raw = await self._read_answer(response, what, idempotent)
        except TimeoutError:
            text = f"{what}: no complete answer from Cleanvoice within {self.deadline:g} s"
            raise (TransientApiError(text) if idempotent else AmbiguousApiError(text)) from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # nothing was sent: safe to retry, even a create-edit
            raise TransientApiError(
                f"{what}: cannot reach Cleanvoice ({self._describe(exc)})"
            ) from None
        except httpx.TransportError as exc:
            text = f"{what}: no answer from Cleanvoice ({self._describe(exc)})"
            raise (TransientApiError(text) if idempotent else AmbiguousApiError(text)) from None
        self.log.debug(
            "api call",
            method=method,
            url=redact_url(str(response.url)),
            status=response.status_code,
        )
        if response.status_code == 429:
            self.limiter.refused(budget, parse_retry_after(response.headers.get("Retry-After")))
        return await self._check(response, raw, what, idempotent)

    async def _read_answer(self, response: httpx.Response, what: str, idempotent: bool) -> bytes:
        """The body of an API answer, decoded, at most ``max_answer_bytes`` of it."""
        cap = self.max_answer_bytes
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > cap:
            raise self._too_large(what, idempotent)
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                raise self._too_large(what, idempotent)
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, what: str, idempotent: bool) -> ApiError:
        text = (
            f"{what}: Cleanvoice's answer is larger than {self.max_answer_bytes // 2**20} MiB, "
            "the most cvsyncd reads (raise [cleanvoice] max_answer_mb if a result can "
            "really be that large)"
        )
        return AnswerTooLarge(text) if idempotent else AmbiguousApiError(text)

    async def _check(
        self, response: httpx.Response, raw: bytes, what: str, idempotent: bool
    ) -> Any:
        status = response.status_code
        body: Any
        try:
            # a long transcript is megabytes of JSON: parsed off the event loop
            body = await asyncio.to_thread(json.loads, raw) if len(raw) > 65536 else json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            body = raw[:4096].decode("utf-8", "replace")
        if 200 <= status < 300:
            if isinstance(body, str):
                text = f"{what}: the answer was not valid JSON"
                raise TransientApiError(text) if idempotent else AmbiguousApiError(text)
            return body
        if 300 <= status < 400:
            # a redirect is never followed (it would carry the key away); for a create-edit
            # it cannot be known whether something behind it did the work
            text = f"{what}: Cleanvoice answered with a redirect (HTTP {status}), not followed"
            redirect = TransientApiError if idempotent else AmbiguousApiError
            raise redirect(text, status=status)
        message, code = error_message(body, status)
        kind: type[ApiError]
        if status == 429:
            kind = TransientApiError  # refused before doing anything: safe even for a create
        elif status in (401, 403) or (
            status < 500 and says_insufficient_credits(status, code, message)
        ):
            kind = AccountApiError  # the key or the credit: pause, never fail a job
        elif status == 408 or status >= 500:
            kind = TransientApiError if idempotent else AmbiguousApiError
        else:
            kind = PermanentApiError
        raise kind(
            self._scrub(f"{what}: HTTP {status}: {message}"),
            status=status,
            code=code,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            said=self._scrub(message),
        )

    # -- file transfers (no credentials) -----------------------------------------------

    async def upload_file(
        self,
        signed_url: str,
        source: Path | IO[bytes],
        size: int,
        *,
        on_progress: ProgressCallback | None = None,
        sha256: bool = False,
    ) -> str | None:
        """PUT ``size`` bytes of ``source`` to ``signed_url``; with ``sha256``, return their
        SHA-256 (hashing costs about half the speed of a fast link, so it is optional).

        ``source`` is an open file (read from its current position; the pipeline opens
        inputs through ``inputs.open_taken``) or a path. The body is streamed in large
        blocks with an exact ``Content-Length``, so memory does not grow with the file. No
        redirect is followed (the body cannot be sent twice). A 403 means the signed URL was
        refused (expired): transient, ask for a new one. A file that shrank while being read
        raises TransientApiError with ``code="file-changed"``.
        """
        check_transfer_url(signed_url)
        self.log.debug("upload", url=redact_url(signed_url), size=size)
        if isinstance(source, Path):
            with open(source, "rb") as file:
                return await self.upload_file(
                    signed_url, file, size, on_progress=on_progress, sha256=sha256
                )
        hasher = hashlib.sha256() if sha256 else None
        content = _read_blocks(source, size, hasher, on_progress)
        what = f"upload to {redact_url(signed_url)}"
        try:
            response = await self._files.put(
                signed_url,
                content=content,
                headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
                follow_redirects=False,
            )
        except _FileChanged as exc:
            raise TransientApiError(
                f"the input changed while being uploaded: {exc}", code="file-changed"
            ) from None
        except httpx.TransportError as exc:
            raise TransientApiError(f"{what} failed: {self._describe(exc)}") from None
        if response.status_code >= 300:
            kind = (
                PermanentApiError if response.status_code in (400, 411, 413) else TransientApiError
            )
            raise kind(f"{what} failed: HTTP {response.status_code}", status=response.status_code)
        return hasher.hexdigest() if hasher else None

    async def download(self, url: str, sink: IO[bytes], *, offset: int = 0) -> int:
        """Stream ``url`` into ``sink`` (an open binary file); return the file's size.

        The file arrives byte for byte: ``Accept-Encoding: identity`` is asked for and the
        body is not decoded (a server that compresses anyway is decoded, and then neither
        its length nor a resume can be checked). With ``offset`` > 0 the sink already
        holds that many bytes of an interrupted download: the rest is asked for with
        ``Range``, or, if the server sends the whole file instead, the sink is emptied and
        filled from the start. Refuse non-https URLs (but loopback), files over
        ``max_download_bytes``, bodies cut short and bodies slower than
        MIN_BYTES_PER_MINUTE; a failure leaves in the sink what arrived, so that the caller
        may resume from ``sink.tell()``.
        """
        check_transfer_url(url)
        self.log.debug("download", url=redact_url(url), offset=offset)
        what = f"download of {redact_url(url)}"
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        position = offset
        pending: list[bytes] = []  # written in large blocks, and kept on a break for a resume
        pending_size = 0
        writer = _BlockWriter(sink)
        pace = _Pace(MIN_BYTES_PER_MINUTE)
        try:
            async with self._files.stream("GET", url, headers=headers) as response:
                encoded = response.headers.get("Content-Encoding", "identity").lower()
                if encoded not in ("", "identity") and offset:
                    await asyncio.to_thread(_empty, sink)  # no resume of a compressed body
                    offset = 0
                position, total = await self._start_download(response, sink, offset, what)
                if encoded not in ("", "identity"):
                    total = None  # the length is the compressed one
                    chunks = response.aiter_bytes()
                else:
                    chunks = response.aiter_raw()
                async for chunk in chunks:
                    position += len(chunk)
                    if position > self.max_download_bytes:
                        raise PermanentApiError(
                            f"{what}: more than {self.max_download_bytes} bytes"
                        )
                    if not pace.keeps_up(len(chunk)):
                        raise TransientApiError(
                            f"{what} slowed to a trickle ({pace.describe()}); trying again"
                        )
                    pending.append(chunk)
                    pending_size += len(chunk)
                    if pending_size >= BLOCK_SIZE:
                        await writer.write(b"".join(pending))
                        pending.clear()
                        pending_size = 0
            await writer.write(b"".join(pending))
            await writer.finish()
        except TransientApiError:
            await writer.write(b"".join(pending))
            await writer.finish()
            raise
        except (httpx.TransportError, httpx.TooManyRedirects) as exc:
            await writer.write(b"".join(pending))
            await writer.finish()
            raise TransientApiError(
                f"{what} broke off after {position} bytes: {self._describe(exc)}"
            ) from None
        finally:
            await writer.settle()
        if total is not None and position != total:
            raise TransientApiError(f"{what} was cut short: {position} of {total} bytes")
        return position

    async def _start_download(
        self, response: httpx.Response, sink: IO[bytes], offset: int, what: str
    ) -> tuple[int, int | None]:
        """Check a download's answer; return (where the body starts, the full size)."""
        status = response.status_code
        if offset and status == 206:
            start, total = parse_content_range(response.headers.get("Content-Range"))
            if start != offset:
                await asyncio.to_thread(_empty, sink)
                raise TransientApiError(f"{what}: the server resumed at byte {start}, not {offset}")
            return offset, total
        if status >= 300:
            # a signed URL that fails (expired, 404 from a storage hiccup …) is asked for
            # anew with the next poll; the edit's retention bounds how long that goes on
            if offset:  # whatever went wrong, the next attempt starts from scratch
                await asyncio.to_thread(_empty, sink)
            raise TransientApiError(f"{what} failed: HTTP {status}", status=status)
        if offset:  # the server ignored Range and sends everything
            await asyncio.to_thread(_empty, sink)
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if total is not None and total > self.max_download_bytes:
            raise PermanentApiError(f"{what}: {total} bytes is over the size cap")
        return 0, total

    def _describe(self, exc: BaseException) -> str:
        return self._scrub(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)

    def _scrub(self, text: str) -> str:
        return scrub(text, [self._key])


def parse_content_range(value: str | None) -> tuple[int, int | None]:
    """Return (first byte, full size or None) of a ``Content-Range: bytes a-b/size``."""
    try:
        unit, _, rest = (value or "").partition(" ")
        span, _, size = rest.partition("/")
        if unit != "bytes":
            raise ValueError(value)
        return int(span.split("-")[0]), (int(size) if size.isdigit() else None)
    except ValueError:
        return -1, None


def _empty(sink: IO[bytes]) -> None:
    sink.seek(0)
    sink.truncate()


def file_url_of(signed_url: str) -> str:
    """Return the file URL to pass to create-edit: the signed URL without its query."""
    return strip_query(signed_url)


class _FileChanged(Exception):
    """The input file no longer has the size it had when the upload started."""


async def _read_blocks(
    f: IO[bytes], size: int, hasher: Any, on_progress: ProgressCallback | None
) -> AsyncIterator[bytes]:
    """Yield exactly ``size`` bytes of the open file ``f`` in large blocks, hashing them on
    the way.

    The next block is read and hashed in a worker thread while the event loop sends the
    one just yielded (both release the GIL), so hashing adds nothing to the sending time;
    two blocks at most are in memory. ``run_in_executor`` starts the work at once, where
    ``to_thread`` would start it only after httpcore has written the yielded block.
    """
    loop = asyncio.get_running_loop()

    def read_from(offset: int) -> asyncio.Future[bytes]:
        n = min(BLOCK_SIZE, size - offset)
        return loop.run_in_executor(None, _read_and_hash, f, n, hasher)

    sent = 0
    ahead = read_from(0)
    try:
        while sent < size:
            block = await asyncio.shield(ahead)
            if not block:
                raise _FileChanged(f"it ended after {sent} of {size} bytes")
            sent += len(block)
            if sent < size:
                ahead = read_from(sent)
            if on_progress:
                on_progress(sent)
            yield block
    finally:
        await _settle(ahead)  # the file must not be closed under a running read


class _Pace:
    """Whether a transfer keeps up a minimum pace, measured over whole minutes."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.per_minute = per_minute
        self.clock = clock
        self.window_start = clock()
        self.in_window = 0

    def keeps_up(self, n: int) -> bool:
        """Count ``n`` bytes; False once a whole minute passed with too few."""
        self.in_window += n
        now = self.clock()
        if now - self.window_start < 60.0:
            return True
        ok = self.in_window >= self.per_minute * (now - self.window_start) / 60.0
        if ok:
            self.window_start, self.in_window = now, 0
        return ok

    def describe(self) -> str:
        elapsed = max(self.clock() - self.window_start, 1e-9)
        return f"{self.in_window} bytes in {elapsed:.0f} s"


class _BlockWriter:
    """Writes blocks to a file in a worker thread, one at a time, while the next arrives.

    A slow disk must not stall the event loop, and the socket must not sit unread while a
    block is written: ``write`` returns once the previous block is written and this one
    is on its way.
    """

    def __init__(self, sink: IO[bytes]):
        self._sink = sink
        self._busy: asyncio.Future[int] | None = None

    async def write(self, block: bytes) -> None:
        await self.finish()
        self._busy = asyncio.get_running_loop().run_in_executor(None, self._sink.write, block)

    async def finish(self) -> None:
        """Wait for the write in progress; raise what it raised (a full disk …)."""
        if self._busy is not None:
            await asyncio.shield(self._busy)
            self._busy = None

    async def settle(self) -> None:
        """Wait, whatever happens, until no write runs: the file may be closed after it."""
        if self._busy is not None:
            await _settle(self._busy)
            self._busy = None


async def _settle(work: asyncio.Future[Any]) -> None:
    """Wait until the thread behind ``work`` is done; its outcome is not wanted here.

    A worker thread cannot be stopped, so what it uses must outlive it; the futures are
    only ever awaited through ``shield``, so they end when their thread does.
    """
    await asyncio.wait([work])
    if not work.cancelled():
        work.exception()


def _read_and_hash(f: IO[bytes], n: int, hasher: Any) -> bytes:
    block = f.read(n)
    if hasher is not None:
        hasher.update(block)
    return block


async def _refuse_insecure_hop(request: httpx.Request) -> None:
    """Check every request of the credential-free client, redirects included."""
    check_transfer_url(str(request.url))
