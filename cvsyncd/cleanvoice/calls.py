"""API requests on kept-alive connections: the standard library's ``http.client``, in a few
worker threads.

An API call is small (a few hundred bytes each way, a transcript at most) and the request
budget allows a few a second, so what a call costs is the client's own bookkeeping. Through
httpx's async client it was 2.7 ms of CPU for a small GET on this kind of machine; through
``http.client`` in a worker thread 0.9 ms (``bench/costs.py``). Here a call takes an idle
connection to its host (or opens one), sends the request, reads the answer up to a cap, and
puts the connection back if the server lets it stay open.

A kept connection is used again only if it was idle for less than KEEPALIVE_SECONDS and the
server has not closed it meanwhile (its socket is not readable), as httpcore checks. Nothing
here follows a redirect, and the caller's deadline is enforced by cancelling the awaiting
task, which shuts the socket so that the thread's read or write fails at once.

Which part of a failure could have reached the server matters for a create-edit, so every
failure says so: :class:`CallFailed` with ``sent=False`` when the connection could not be
made (nothing was sent; safe to repeat), ``sent=True`` once any byte of the request may have
gone out.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import select
import socket
import ssl
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from cvsyncd.cleanvoice.transfers import connection_for


@dataclass(frozen=True)
class Timeouts:
    """How long a call may wait for a free connection, to connect, and for each read or
    write (the caller's deadline bounds the whole call)."""

    pool: float = 30.0
    connect: float = 10.0
    read: float = 60.0


API_TIMEOUT = Timeouts()
MAX_CONNECTIONS = 8  # calls at once (more wait for a free worker): the budget allows a few a second
KEEPALIVE_SECONDS = 5.0  # an idle connection older than this is closed, not used again
READ_BLOCK = 64 * 1024
# how a kept connection fails when the server closed it just as a request went out on it:
# no byte of an answer came
_CLOSED_UNDER_US = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
)


@dataclass
class Answer:
    """An API answer: its status, headers and whole (decoded) body."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


class CallFailed(Exception):
    """The exchange failed; ``sent`` says whether any of the request may have gone out."""

    def __init__(self, error: BaseException, *, sent: bool):
        super().__init__(str(error))
        self.error = error
        self.sent = sent


class AnswerOverCap(Exception):
    """The answer is larger than the caller's cap."""


class _Ticket:
    """One call's connection, which the event loop may cut from outside."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.conn: http.client.HTTPConnection | None = None
        self.cut = False

    def hold(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if self.cut:
                conn.close()
                raise ConnectionAbortedError("the call was cancelled")
            self.conn = conn

    def release(self) -> http.client.HTTPConnection | None:
        """Let go of the connection; return it if it may be used again."""
        with self._lock:
            conn, self.conn = self.conn, None
            return None if self.cut else conn

    def cut_off(self) -> None:
        with self._lock:
            self.cut = True
            if self.conn is not None and self.conn.sock is not None:
                with contextlib.suppress(OSError):
                    self.conn.sock.shutdown(socket.SHUT_RDWR)


class ApiConnections:
    """Kept-alive connections to the API host, used from worker threads."""

    def __init__(
        self,
        headers: Mapping[str, str],
        *,
        timeouts: Timeouts = API_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
    ):
        self.headers = dict(headers)
        self.timeouts = timeouts
        self._executor = ThreadPoolExecutor(max_connections, thread_name_prefix="cvsyncd-api")
        self._lock = threading.Lock()
        self._idle: defaultdict[str, list[tuple[http.client.HTTPConnection, float]]] = defaultdict(
            list
        )
        self._tls: ssl.SSLContext | None = None
        self._closed = False

    async def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        content_type: str = "",
        max_bytes: int,
        idempotent: bool = True,
    ) -> Answer:
        """Send one request and return its answer; raise CallFailed or AnswerOverCap.

        A request that is not ``idempotent`` (a create-edit: it may bill) always goes on a
        new connection: a kept one may be closed by the server at the very moment it is
        used, and then nobody can tell whether the request reached it. An idempotent
        request that meets a kept connection closed that way is sent once more on a new
        one (RFC 9110, 9.2.2).
        """
        ticket = _Ticket()
        queued = time.monotonic()
        job = self._executor.submit(
            self._exchange, ticket, queued, method, url, body, content_type, max_bytes, idempotent
        )
        try:
            return await asyncio.wrap_future(job)
        except asyncio.CancelledError:
            ticket.cut_off()  # a call already running fails at once; a queued one never runs
            raise

    def close(self) -> None:
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            for conns in self._idle.values():
                for conn, _ in conns:
                    conn.close()
            self._idle.clear()

    # -- in a worker thread -----------------------------------------------------------

    def _exchange(
        self,
        ticket: _Ticket,
        queued: float,
        method: str,
        url: str,
        body: bytes | None,
        content_type: str,
        max_bytes: int,
        idempotent: bool,
    ) -> Answer:
        if time.monotonic() - queued > self.timeouts.pool:
            raise CallFailed(TimeoutError("no free connection"), sent=False)
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = dict(self.headers)
        if content_type:
            headers["Content-Type"] = content_type
        kept = self._checkout(origin) if idempotent else None
        if kept is not None:
            try:
                return self._send(ticket, kept, origin, method, target, body, headers, max_bytes)
            except CallFailed as failed:
                if not isinstance(failed.error, _CLOSED_UNDER_US) or ticket.cut:
                    raise
                # the server closed the kept connection as the request went out: again, anew
        conn = self._connect(ticket, parts)
        return self._send(ticket, conn, origin, method, target, body, headers, max_bytes)

    def _connect(self, ticket: _Ticket, parts: SplitResult) -> http.client.HTTPConnection:
        conn = None
        try:
            conn = connection_for(parts, self._tls_context, self.timeouts.connect)
            ticket.hold(conn)
            conn.connect()
            if conn.sock is not None:
                conn.sock.settimeout(self.timeouts.read)
        except (OSError, http.client.HTTPException) as exc:
            ticket.release()
            if conn is not None:
                conn.close()
            raise CallFailed(exc, sent=False) from None
        return conn

    def _send(
        self,
        ticket: _Ticket,
        conn: http.client.HTTPConnection,
        origin: str,
        method: str,
        target: str,
        body: bytes | None,
        headers: dict[str, str],
        max_bytes: int,
    ) -> Answer:
        try:
            ticket.hold(conn)
            conn.request(method, target, body=body, headers=headers)
            response = conn.getresponse()
            answer = Answer(response.status, response.headers, _read(response, max_bytes))
        except AnswerOverCap:
            ticket.release()
            conn.close()
            raise
        except (OSError, http.client.HTTPException, zlib.error) as exc:
            ticket.release()
            conn.close()
            raise CallFailed(exc, sent=True) from None
        kept = ticket.release()
        if kept is None or response.will_close or self._closed:
            conn.close()
        else:
            with self._lock:
                self._idle[origin].append((kept, time.monotonic()))
        return answer

    def _checkout(self, origin: str) -> http.client.HTTPConnection | None:
        """An idle connection to ``origin`` that the server has not closed, if any."""
        while True:
            with self._lock:
                idle = self._idle.get(origin)
                if not idle:
                    return None
                conn, since = idle.pop()
            if time.monotonic() - since < KEEPALIVE_SECONDS and _still_open(conn):
                return conn
            conn.close()

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            import httpx  # the same trust store (and SSL_CERT_FILE …) as before, and as transfers

            self._tls = httpx.create_ssl_context()
        return self._tls


def _still_open(conn: http.client.HTTPConnection) -> bool:
    """Whether a kept connection can carry another request: an idle socket that has
    something to read has been closed by the server (or sent what nobody asked for)."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _read(response: http.client.HTTPResponse, cap: int) -> bytes:
    """The whole body, decoded if the server compressed it, at most ``cap`` bytes of it."""
    length = response.getheader("Content-Length") or ""
    encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
    if encoding in ("", "identity") and length.isdigit() and int(length) > cap:
        raise AnswerOverCap
    inflate = None
    if encoding in ("gzip", "x-gzip"):
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        inflate = zlib.decompressobj(zlib.MAX_WBITS)
    elif encoding not in ("", "identity"):
        raise http.client.HTTPException(
            f"the answer is encoded as {encoding[:40]!r}, which cvsyncd cannot read"
        )
    chunks: list[bytes] = []
    size = 0
    while block := response.read(READ_BLOCK):
        if inflate is not None:
            block = inflate.decompress(block, cap + 1 - size)
            if inflate.unconsumed_tail:
                raise AnswerOverCap
        size += len(block)
        if size > cap:
            raise AnswerOverCap
        chunks.append(block)
    if inflate is not None:
        rest = inflate.flush()
        size += len(rest)
        if size > cap:
            raise AnswerOverCap
        chunks.append(rest)
    return b"".join(chunks)
