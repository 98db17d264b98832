"""Moving files to and from signed storage URLs: streamed, bounded, byte for byte.

A transfer runs in a thread of its own with the standard library's ``http.client``. A
download reads the socket straight into one small reused buffer (``readinto``) and writes
the file from it while the bytes are still in the CPU's cache; an upload is sent by the
kernel from the file (``sendfile``), or through the same kind of buffer where TLS or a
hash needs the bytes. No block is allocated or copied in Python, the event loop does none
of the work, and the kernel's page cache is the only other party, as with curl. (httpx,
which talks to the API, copies each block of a body four times on its way through h11 and
httpcore, into fresh allocations: a gigabyte cost twice curl's CPU and a page fault per
4 KiB; ``bench/transfer.py`` measures both.)

The connection carries no credentials at all: a signed URL is its own key, and the API
key must never travel to storage. Every hop (redirects included) must be https, or http to
this machine (the emulator). Uploads send an exact ``Content-Length`` and follow no
redirect (the body cannot be sent twice); downloads ask for the file as it is
(``Accept-Encoding: identity``), resume with ``Range``, stop at a size cap and at a pace
under MIN_BYTES_PER_MINUTE. An https transfer goes through the proxy the environment
names (``https_proxy`` or ``all_proxy``, unless ``no_proxy`` exempts the host), as httpx
would take it. Cancelling the awaiting task shuts the socket, which ends the thread at once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import http.client
import io
import queue
import socket
import ssl
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import SplitResult, unquote, urljoin, urlsplit

import structlog

from cvsyncd import events as ev
from cvsyncd.counters import Counters
from cvsyncd.errors import PermanentApiError, TransientApiError
from cvsyncd.redact import redact_url, strip_query
from cvsyncd.urls import is_loopback_url

T = TypeVar("T")
# The buffer a body passes through: small enough that what was just read from the socket
# is still in the CPU's cache when it is written to the file. With 1 MiB, a gigabyte from a
# fast server on this machine came at 0.8 times curl's speed; with 128 KiB at 1.8 times,
# with a busy core too (64 KiB and 256 KiB: in between; bench/transfer.py).
BUFFER_SIZE = 128 * 1024
DECODED_BLOCK = 1024 * 1024  # at most this much of a decompressed body at a time
SENDFILE_STEP = 8 * 1024 * 1024  # progress is reported after each step of this many bytes
CONNECT_TIMEOUT = 15.0
IO_TIMEOUT = 120.0  # a read or a write that waits longer than this fails
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DEFAULT_MAX_DOWNLOAD_BYTES = 50 * 1024**3
MIN_BYTES_PER_MINUTE = 32 * 1024  # a transfer slower than this over a minute is stalled
MAX_DESCRIPTION = 300  # characters of a server's words or an error kept in a message

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
        counters: Counters | None = None,
    ):
        self.user_agent = user_agent
        self.max_download_bytes = max_download_bytes
        self.counters = counters if counters is not None else Counters()
        self.log = structlog.get_logger("cvsyncd.api")
        self._describe = describe
        self._tls: ssl.SSLContext | None = None

    async def aclose(self) -> None:
        """Nothing to release: every transfer closes its own connection."""

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
        SHA-256 (hashing on the way costs speed on a fast link, so it is optional).

        ``source`` is an open file (read from its current position; the pipeline opens
        inputs through ``inputs.open_taken``) or a path. ``on_progress`` is called on the
        event loop with the bytes sent so far. No redirect is followed (the body cannot be
        sent twice). A 403 means the signed URL was refused (expired): transient, ask for a
        new one. A file that shrank while being read raises TransientApiError with
        ``code="file-changed"``.
        """
        check_transfer_url(signed_url)
        self.log.debug(ev.API_UPLOAD, url=redact_url(signed_url), size=size)
        if isinstance(source, Path):
            with open(source, "rb") as file:
                return await self.upload_file(
                    signed_url, file, size, on_progress=on_progress, sha256=sha256
                )
        hasher = hashlib.sha256() if sha256 else None
        loop = asyncio.get_running_loop()

        counted = 0

        def progress(sent: int) -> None:
            nonlocal counted
            self.counters.transferred(up=sent - counted)  # for /metrics
            counted = sent
            if on_progress is not None:
                loop.call_soon_threadsafe(on_progress, sent)

        def work(line: _Line) -> None:
            self._upload(line, signed_url, source, size, hasher, progress)

        await _in_thread(work)
        return hasher.hexdigest() if hasher else None

    async def download(self, url: str, sink: IO[bytes], *, offset: int = 0) -> int:
        """Stream ``url`` into ``sink`` (an open binary file); return the file's size.

        The file arrives byte for byte: ``Accept-Encoding: identity`` is asked for and the
        body is not decoded (a server that compresses anyway with gzip or deflate is
        decoded, and then neither its length nor a resume can be checked). With ``offset``
        > 0 the sink already holds that many bytes of an interrupted download: the rest is
        asked for with ``Range``, or, if the server sends the whole file instead, the sink
        is emptied and filled from the start. Refuse non-https URLs (but loopback), files
        over ``max_download_bytes``, bodies cut short and bodies slower than
        MIN_BYTES_PER_MINUTE; a failure leaves in the sink what arrived, so that the caller
        may resume from ``sink.tell()``.
        """
        check_transfer_url(url)
        self.log.debug(ev.API_DOWNLOAD, url=redact_url(url), offset=offset)
        return await _in_thread(lambda line: self._download(line, url, sink, offset))

    # -- in the transfer's thread ------------------------------------------------------

    def _upload(
        self,
        line: _Line,
        url: str,
        source: IO[bytes],
        size: int,
        hasher: Any,
        progress: ProgressCallback,
    ) -> None:
        what = f"upload to {redact_url(url)}"
        try:
            conn, target = self._connect(line, url)
            conn.putrequest("PUT", target, skip_accept_encoding=True)
            for name, value in (
                ("User-Agent", self.user_agent),
                ("Content-Length", str(size)),
                ("Content-Type", "application/octet-stream"),
            ):
                conn.putheader(name, value)
            conn.endheaders()
            try:
                _send_body(conn, source, size, hasher, progress)
            except OSError:  # the server may have answered early, and closed
                response = _early_answer(conn)
                if response is None:
                    raise
            else:
                response = conn.getresponse()
            _drain(response)
        except _FileChanged as exc:
            raise TransientApiError(
                f"the input changed while being uploaded: {exc}", code="file-changed"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise TransientApiError(f"{what} failed: {self._explain(exc)}") from None
        status = response.status
        if status >= 300:
            kind = PermanentApiError if status in (400, 411, 413) else TransientApiError
            raise kind(f"{what} failed: HTTP {status}", status=status)

    def _download(self, line: _Line, url: str, sink: IO[bytes], offset: int) -> int:
        what = f"download of {redact_url(url)}"
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        position = offset
        try:
            response = self._get(line, url, headers, what)
            encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
            decoder = _Decoder.of(encoding, what)
            if decoder is not None and offset:
                _empty(sink)  # no resume of a compressed body
                offset = 0
            position, total = self._start_download(response, sink, offset, what)
            if decoder is not None:
                total = None  # the length is the compressed one
            for chunk in _body(response, what):
                for block in (chunk,) if decoder is None else decoder.feed(chunk):
                    position = self._count(position, len(block), what)
                    _write(sink, block)
            for block in decoder.flush() if decoder is not None else ():
                position = self._count(position, len(block), what)
                _write(sink, block)
        except _SinkFailed as failed:  # the file, not the network: a full disk …
            raise failed.error from None
        except (OSError, http.client.HTTPException, zlib.error) as exc:
            raise TransientApiError(
                f"{what} broke off after {position} bytes: {self._explain(exc)}"
            ) from None
        if total is not None and position != total:
            raise TransientApiError(f"{what} was cut short: {position} of {total} bytes")
        return position

    def _count(self, position: int, n: int, what: str) -> int:
        position += n
        self.counters.transferred(down=n)
        if position > self.max_download_bytes:
            raise PermanentApiError(f"{what}: more than {self.max_download_bytes} bytes")
        return position

    def _start_download(
        self, response: http.client.HTTPResponse, sink: IO[bytes], offset: int, what: str
    ) -> tuple[int, int | None]:
        """Check a download's answer; return (where the body starts, the full size)."""
        status = response.status
        if status == 206:  # a part: it must start where asked (at 0 if no part was asked for)
            start, total = parse_content_range(response.getheader("Content-Range"))
            if start < 0:
                problem = "a part of the file without a readable Content-Range"
            elif start != offset:
                problem = f"a part starting at byte {start}, not {offset}"
            elif not offset and total is None:
                problem = "a part of the file of unknown size, though the whole was asked for"
            else:
                problem = ""
            if problem:
                _empty(sink)
                raise TransientApiError(f"{what}: the server sent {problem}")
            return offset, total  # the body must then reach the full size, or it was cut short
        if status >= 300:
            # a signed URL that fails (expired, 404 from a storage hiccup …) is asked for
            # anew with the next poll; the edit's retention bounds how long that goes on
            if offset:  # whatever went wrong, the next attempt starts from scratch
                _empty(sink)
            raise TransientApiError(f"{what} failed: HTTP {status}", status=status)
        if offset:  # the server ignored Range and sends everything
            _empty(sink)
        length = response.getheader("Content-Length") or ""
        total = int(length) if length.isdigit() else None
        if total is not None and total > self.max_download_bytes:
            raise PermanentApiError(f"{what}: {total} bytes is over the size cap")
        return 0, total

    def _get(
        self, line: _Line, url: str, headers: dict[str, str], what: str
    ) -> http.client.HTTPResponse:
        """GET ``url``, following up to MAX_REDIRECTS redirects, each hop checked."""
        for _ in range(MAX_REDIRECTS + 1):
            check_transfer_url(url)
            conn, target = self._connect(line, url)
            conn.request("GET", target, headers={"User-Agent": self.user_agent, **headers})
            response = conn.getresponse()
            location = response.getheader("Location")
            if response.status not in REDIRECT_STATUSES or not location:
                return response
            response.close()
            url = urljoin(url, location.strip())
        raise TransientApiError(f"{what}: more than {MAX_REDIRECTS} redirects")

    def _connect(self, line: _Line, url: str) -> tuple[http.client.HTTPConnection, str]:
        """Open a connection for ``url`` (through a proxy if one applies); return it and
        the request target."""
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn = connection_for(parts, self._tls_context, CONNECT_TIMEOUT)
        line.attach(conn)
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(IO_TIMEOUT)
        return conn, target

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            import httpx  # the same trust store (and SSL_CERT_FILE …) as the API client

            self._tls = httpx.create_ssl_context()
        return self._tls

    def _explain(self, exc: BaseException) -> str:
        text = self._describe(exc)
        return text if len(text) <= MAX_DESCRIPTION else text[:MAX_DESCRIPTION] + " …"


def connection_for(
    parts: SplitResult, tls: Callable[[], ssl.SSLContext], timeout: float
) -> http.client.HTTPConnection:
    """A connection (not yet made) for a URL's host: plain http only to this machine, never
    proxied; https directly, or through a tunnel (CONNECT) via the proxy the environment
    names, which sees the host and no more."""
    host, port = parts.hostname or "", parts.port
    if parts.scheme == "http":
        return http.client.HTTPConnection(host, port, timeout=timeout)
    proxy = proxy_for(parts)
    if proxy is None:
        return http.client.HTTPSConnection(host, port, timeout=timeout, context=tls())
    conn = http.client.HTTPSConnection(
        proxy.hostname or "", proxy.port or 80, timeout=timeout, context=tls()
    )
    conn.set_tunnel(host, port, headers=_proxy_auth(proxy))
    return conn


def proxy_for(parts: SplitResult) -> SplitResult | None:
    """Return the proxy the environment names for an https URL, or None.

    ``https_proxy`` (or ``all_proxy``) applies unless ``no_proxy`` exempts the host; plain
    http goes only to this machine, which is never proxied.
    """
    if parts.scheme != "https" or is_loopback_url(parts.geturl()):
        return None
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get("https") or proxies.get("all")
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if not proxy or bypass(parts.hostname or "", proxies):
        return None
    found = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if found.scheme != "http" or not found.hostname:
        raise TransientApiError(
            f"the environment's https_proxy is a {found.scheme or 'scheme-less'}:// URL, and "
            "transfers can only go through an http://host:port proxy: correct or unset it, "
            "and restart cvsyncd"
        )
    return found


def _proxy_auth(proxy: SplitResult) -> dict[str, str]:
    if proxy.username is None:
        return {}
    pair = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}".encode()
    return {"Proxy-Authorization": "Basic " + base64.b64encode(pair).decode()}


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


def _body(response: http.client.HTTPResponse, what: str) -> Iterator[memoryview]:
    """The body through one reused buffer, read straight from the socket; each chunk is
    valid until the next is read. A body slower than MIN_BYTES_PER_MINUTE is given up."""
    buffer = memoryview(bytearray(BUFFER_SIZE))
    pace = _Pace(MIN_BYTES_PER_MINUTE)
    while n := response.readinto(buffer):
        if not pace.keeps_up(n):
            raise TransientApiError(f"{what} slowed to a trickle ({pace.describe()}); trying again")
        yield buffer[:n]


class _SinkFailed(Exception):
    """Writing the file failed (carries the OSError, which is not the network's)."""

    def __init__(self, error: OSError):
        super().__init__(str(error))
        self.error = error


def _write(sink: IO[bytes], block: bytes | memoryview) -> None:
    try:
        sink.write(block)
    except OSError as exc:
        raise _SinkFailed(exc) from None


def _empty(sink: IO[bytes]) -> None:
    sink.seek(0)
    sink.truncate()


class _FileChanged(Exception):
    """The input file no longer has the size it had when the upload started."""


def _send_body(
    conn: http.client.HTTPConnection,
    source: IO[bytes],
    size: int,
    hasher: Any,
    progress: ProgressCallback,
) -> None:
    """Send exactly ``size`` bytes of ``source`` from its current position.

    To a plain socket, unhashed, the kernel copies the file to the socket itself
    (``sendfile``); otherwise (TLS, a hash wanted, a source without a descriptor) the
    bytes go through one reused buffer.
    """
    sock = conn.sock
    if hasher is None and not isinstance(sock, ssl.SSLSocket) and _descriptor(source):
        start = source.tell()
        sent = 0
        while sent < size:
            n = sock.sendfile(source, start + sent, min(SENDFILE_STEP, size - sent))
            if not n:
                raise _FileChanged(f"it ended after {sent} of {size} bytes")
            sent += n
            progress(sent)
        return
    buffer = memoryview(bytearray(max(1, min(BUFFER_SIZE, size))))
    sent = told = 0
    while sent < size:
        n = source.readinto(buffer[: size - sent])  # type: ignore[attr-defined]
        if not n:
            raise _FileChanged(f"it ended after {sent} of {size} bytes")
        block = buffer[:n]
        if hasher is not None:
            hasher.update(block)
        sock.sendall(block)
        sent += n
        if sent - told >= SENDFILE_STEP or sent == size:
            progress(sent)
            told = sent


def _descriptor(source: IO[bytes]) -> bool:
    """Whether ``source`` is a file with a descriptor that ``sendfile`` can read."""
    try:
        source.fileno()
    except (OSError, AttributeError, io.UnsupportedOperation):
        return False
    return True


def _early_answer(conn: http.client.HTTPConnection) -> http.client.HTTPResponse | None:
    """The answer of a server that stopped reading the body, if it sent one."""
    try:
        return conn.getresponse()
    except (OSError, http.client.HTTPException):
        return None


def _drain(response: http.client.HTTPResponse) -> None:
    """Read (at most a little of) an answer's body, so that the exchange ends cleanly."""
    with contextlib.suppress(OSError, http.client.HTTPException):
        response.read(64 * 1024)
    response.close()


class _Decoder:
    """Undoes the gzip or deflate a server applied although identity was asked for,
    yielding at most a block at a time (a small body may not become a huge one in memory)."""

    def __init__(self, wbits: int, raw_fallback: bool):
        self._inflate = zlib.decompressobj(wbits)
        self._raw_fallback = raw_fallback
        self._started = False

    @classmethod
    def of(cls, encoding: str, what: str) -> _Decoder | None:
        if encoding in ("", "identity"):
            return None
        if encoding in ("gzip", "x-gzip"):
            return cls(16 + zlib.MAX_WBITS, raw_fallback=False)
        if encoding == "deflate":  # zlib-wrapped as the RFC says, or raw as some servers do
            return cls(zlib.MAX_WBITS, raw_fallback=True)
        raise PermanentApiError(
            f"{what}: the server sent the file encoded as {encoding[:40]!r}, which cvsyncd "
            "cannot decode (it asks for the file as it is)"
        )

    def feed(self, data: memoryview | bytes) -> Iterator[bytes]:
        if not self._started and self._raw_fallback:
            self._started = True
            try:
                probe = zlib.decompressobj(zlib.MAX_WBITS)
                probe.decompress(bytes(data[:2]))
            except zlib.error:
                self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        self._started = True
        block = self._inflate.decompress(data, DECODED_BLOCK)
        while block:
            yield block
            tail = self._inflate.unconsumed_tail
            block = self._inflate.decompress(tail, DECODED_BLOCK) if tail else b""

    def flush(self) -> Iterator[bytes]:
        rest = self._inflate.flush()
        if rest:
            yield rest


class _Line:
    """One transfer's connection, which the event loop may cut from outside."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conns: list[http.client.HTTPConnection] = []
        self.cut = False

    def attach(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if self.cut:
                raise ConnectionAbortedError("the transfer was cancelled")
            self._conns.append(conn)

    def cut_off(self) -> None:
        """Shut the socket down: the thread's read or write in progress fails at once."""
        with self._lock:
            self.cut = True
            for conn in self._conns:
                if conn.sock is not None:
                    with contextlib.suppress(OSError):
                        conn.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()


class _Threads:
    """Threads for transfers, one per transfer running, kept a while for the next ones.

    A transfer may last an hour, so it does not take a worker of the loop's shared pool;
    but starting a thread for each one cost more CPU than a short transfer's own work.
    A thread that finishes waits up to ``keep_seconds`` for another transfer, then ends.
    They are daemon threads, as the transfer threads always were: one stuck in a read of
    a hung disk does not hold the process at exit. A working thread is named
    ``cvsyncd-transfer``, an idle one ``cvsyncd-transfer-idle``.
    """

    def __init__(self, keep_seconds: float = 30.0):
        self.keep_seconds = keep_seconds
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue[Callable[[], Callable[[], None]]]] = []

    def run(self, work: Callable[[], Callable[[], None]]) -> None:
        """Run ``work`` in a free thread; what it returns is called once that thread is
        free again, so that whoever it tells can start the next transfer on it."""
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
        if inbox is None:
            inbox = queue.SimpleQueue()
            thread = threading.Thread(
                target=self._serve, args=(inbox,), name="cvsyncd-transfer", daemon=True
            )
            thread.start()
        inbox.put(work)

    def _serve(self, inbox: queue.SimpleQueue[Callable[[], Callable[[], None]]]) -> None:
        me = threading.current_thread()
        while True:
            try:
                work = inbox.get(timeout=self.keep_seconds)
            except queue.Empty:
                with self._lock:
                    if inbox in self._idle:  # else it was just handed work: take that
                        self._idle.remove(inbox)
                        return
                continue
            me.name = "cvsyncd-transfer"
            then = work()
            me.name = "cvsyncd-transfer-idle"
            with self._lock:
                self._idle.append(inbox)
            then()


_THREADS = _Threads()


async def _in_thread(work: Callable[[_Line], T]) -> T:
    """Run ``work`` in a transfer thread (``_Threads``) and await its outcome.

    Cancelling the awaiting task cuts the connection and waits for the thread to let go of
    the file, which the caller may close as soon as this returns or raises.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()
    line = _Line()

    def settle(result: Any, error: BaseException | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)

    def run() -> Callable[[], None]:
        result, error = None, None
        try:
            result = work(line)
        except BaseException as exc:
            error = exc
        finally:
            line.close()

        def tell() -> None:  # once the thread is free for the next transfer
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(settle, result, error)

        return tell

    _THREADS.run(run)
    try:
        return await asyncio.shield(done)
    except asyncio.CancelledError:
        line.cut_off()
        await asyncio.wait([done])
        if not done.cancelled():
            done.exception()  # retrieved: the cancellation is what the caller hears
        raise


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
