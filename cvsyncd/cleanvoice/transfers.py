"""Moving files to and from signed storage URLs: streamed, bounded, byte for byte.

:class:`Transfers` owns an ``httpx`` client that carries no credentials at all: a signed
URL is its own key, and the API key must never travel to storage. Every hop (redirects
included) must be https, or http to this machine (the emulator). Uploads stream the open
file in large blocks with an exact ``Content-Length`` and follow no redirect (the body
cannot be sent twice); downloads ask for the file as it is (``Accept-Encoding:
identity``), resume with ``Range``, stop at a size cap and at a pace under
MIN_BYTES_PER_MINUTE. Memory stays flat as files grow: two blocks at most are held.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import httpcore
import httpx
import structlog

from cvsyncd import events as ev
from cvsyncd.errors import PermanentApiError, TransientApiError
from cvsyncd.redact import redact_url, strip_query
from cvsyncd.urls import is_loopback_url

BLOCK_SIZE = 1024 * 1024
# httpcore reads response bodies 64 KiB at a time, each read a trip through anyio and the
# event loop, while asyncio's transport receives up to 256 KiB at once: reading that much
# gives downloads about 1.4 times the throughput for 30 % less CPU (bench/transfer.py).
# It is a class constant of httpcore, not an option of a client.
if hasattr(httpcore.AsyncHTTP11Connection, "READ_NUM_BYTES"):
    httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = 256 * 1024
TRANSFER_TIMEOUT = httpx.Timeout(connect=15.0, read=120.0, write=120.0, pool=60.0)
DEFAULT_MAX_DOWNLOAD_BYTES = 50 * 1024**3
MIN_BYTES_PER_MINUTE = 32 * 1024  # a transfer slower than this over a minute is stalled

ProgressCallback = Callable[[int], None]
Describe = Callable[[BaseException], str]


def check_transfer_url(url: str) -> None:
    """Refuse a signed URL that is not https (http is allowed only on loopback)."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback_url(url)):
        return
    raise PermanentApiError(
        f"refusing to transfer a file over {parts.scheme or 'no scheme'}: {redact_url(url)} "
        "(only https, or http to this machine for the emulator)"
    )


def file_url_of(signed_url: str) -> str:
    """Return the file URL to pass to create-edit: the signed URL without its query."""
    return strip_query(signed_url)


class Transfers:
    """Uploads to and downloads from signed URLs, with no credentials."""

    def __init__(
        self,
        user_agent: str,
        *,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        describe: Describe = str,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.max_download_bytes = max_download_bytes
        self.log = structlog.get_logger("cvsyncd.api")
        self._describe = describe
        self._http = httpx.AsyncClient(
            headers={"User-Agent": user_agent},
            timeout=TRANSFER_TIMEOUT,
            follow_redirects=True,
            max_redirects=5,
            event_hooks={"request": [_refuse_insecure_hop]},
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

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
        self.log.debug(ev.API_UPLOAD, url=redact_url(signed_url), size=size)
        if isinstance(source, Path):
            with open(source, "rb") as file:
                return await self.upload_file(
                    signed_url, file, size, on_progress=on_progress, sha256=sha256
                )
        hasher = hashlib.sha256() if sha256 else None
        content = _read_blocks(source, size, hasher, on_progress)
        what = f"upload to {redact_url(signed_url)}"
        try:
            response = await self._http.put(
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
        self.log.debug(ev.API_DOWNLOAD, url=redact_url(url), offset=offset)
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
            async with self._http.stream("GET", url, headers=headers) as response:
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
