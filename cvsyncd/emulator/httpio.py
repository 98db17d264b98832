"""HTTP/1.1 plumbing under the endpoints: request bodies, responses, connection resets.

Bodies are read in blocks, framed by ``Content-Length`` or chunked transfer encoding, and
never held whole unless an endpoint asks for a small one. A response is built first as a
``Response`` value (bytes or a slice of a file on disk) and written afterwards, so a fault
can still spoil it. Keep-alive stays correct because a connection whose request body was
not read to the end is closed rather than reused.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

BLOCK = 64 * 1024


class BodyError(Exception):
    """The request body could not be read as framed."""


class MalformedBody(BodyError):
    """Bad ``Content-Length``, ``Transfer-Encoding`` or chunk framing."""


class IncompleteBody(BodyError):
    """The client stopped sending before the body was complete."""


class BodyTooLarge(BodyError):
    """The body is larger than the endpoint accepts."""


@dataclass(frozen=True)
class FileSlice:
    path: Path
    start: int
    length: int


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    file: FileSlice | None = None

    @property
    def length(self) -> int:
        return self.file.length if self.file is not None else len(self.body)


class Exchange:
    """One request as the endpoints see it, and the facts the request log keeps about it."""

    def __init__(self, handler: BaseHTTPRequestHandler):
        parts = urlsplit(handler.path)
        self.method = handler.command
        self.path = parts.path  # as sent (percent-encoded), never with the query
        self.query = parse_qs(parts.query, keep_blank_values=True)
        self.headers = handler.headers
        self.client_host = str(handler.client_address[0])
        self._rfile = handler.rfile
        self.bytes_in = 0
        # What the request log records, filled in as the request is handled.
        self.endpoint = "unknown"
        self.auth = "missing"
        self.fault: str | None = None
        self.processed = False
        self.notes: dict[str, Any] = {}
        self._frame()

    def _frame(self) -> None:
        encoding = self.headers.get("Transfer-Encoding")
        length = self.headers.get("Content-Length")
        self.framing_error: str | None = None
        self._chunked = False
        self._remaining = 0
        self.content_length: int | None = None  # None when chunked, absent or malformed
        if encoding is not None:
            self._chunked = encoding.split(",")[-1].strip().lower() == "chunked"
            if not self._chunked:
                self.framing_error = f"unsupported Transfer-Encoding: {encoding}"
        elif length is not None:
            if not length.strip().isdigit():
                self.framing_error = "invalid Content-Length"
            else:
                self.content_length = self._remaining = int(length)
        self.body_complete = (
            self.framing_error is None and not self._chunked and not self._remaining
        )

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def _read(self, size: int) -> bytes:
        try:
            block = self._rfile.read(size)
        except OSError as error:  # includes socket timeouts
            raise IncompleteBody(str(error)) from error
        if not block:
            raise IncompleteBody("connection closed before the body was complete")
        self.bytes_in += len(block)
        return block

    def _readline(self) -> bytes:
        try:
            line = self._rfile.readline(1024)
        except OSError as error:
            raise IncompleteBody(str(error)) from error
        if not line:
            raise IncompleteBody("connection closed inside chunked body")
        if not line.endswith(b"\n"):
            raise MalformedBody("chunk header line too long")
        return line

    def _iter_sized(self, size: int) -> Iterator[bytes]:
        while size > 0:
            block = self._read(min(BLOCK, size))
            size -= len(block)
            yield block

    def _iter_chunked(self) -> Iterator[bytes]:
        while True:
            size_text = self._readline().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise MalformedBody("bad chunk size") from None
            if size < 0:
                raise MalformedBody("bad chunk size")
            if size == 0:
                while self._readline().strip():  # trailer fields, up to the empty line
                    pass
                return
            yield from self._iter_sized(size)
            if self._readline().strip():
                raise MalformedBody("chunk not followed by CRLF")

    def iter_body(self) -> Iterator[bytes]:
        """Yield the request body in blocks. Raise a BodyError if it cannot be read whole."""
        if self.framing_error is not None:
            raise MalformedBody(self.framing_error)
        if self.body_complete:
            return
        if self._chunked:
            yield from self._iter_chunked()
        else:
            remaining, self._remaining = self._remaining, 0
            yield from self._iter_sized(remaining)
        self.body_complete = True

    def read_body(self, limit: int) -> bytes:
        """Return the whole body if it has at most ``limit`` bytes. Raise a BodyError."""
        declared = self.content_length
        if declared is not None and declared > limit:
            raise BodyTooLarge(f"body larger than {limit} bytes")
        blocks = []
        for block in self.iter_body():
            blocks.append(block)
            if self.bytes_in > limit:
                raise BodyTooLarge(f"body larger than {limit} bytes")
        return b"".join(blocks)

    def discard_body(self, limit: int) -> bool:
        """Read and drop the rest of the body if small enough; return True if it is gone.

        Answering before the body is read and then closing makes the kernel reset the
        connection, which can destroy the answer before the client reads it.
        """
        if self.body_complete:
            return True
        declared = self.content_length
        if self.framing_error is not None or (declared is not None and declared > limit):
            return False
        try:
            for _ in self.iter_body():
                if self.bytes_in > limit:
                    return False
        except BodyError:
            return False
        return True


def write_response(
    handler: BaseHTTPRequestHandler,
    response: Response,
    *,
    head_only: bool,
    truncate: bool,
    close: bool,
) -> int:
    """Send ``response``; return the body bytes sent.

    With ``truncate`` the full ``Content-Length`` is announced but only half the body is
    sent, and the connection is closed: what a client sees when a transfer dies midway.
    """
    handler.send_response(response.status)
    for name, value in response.headers:
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(response.length))
    if close or truncate:
        handler.send_header("Connection", "close")
    handler.end_headers()
    if head_only:
        return 0
    size = response.length // 2 if truncate else response.length
    if response.file is None:
        handler.wfile.write(response.body[:size])
        return size
    with response.file.path.open("rb") as source:
        return handler.connection.sendfile(source, response.file.start, size) if size else 0


def reset_connection(handler: BaseHTTPRequestHandler) -> None:
    """Drop the connection with a TCP reset and no response, like a crashing peer."""
    handler.close_connection = True
    connection: socket.socket = handler.connection
    with contextlib.suppress(OSError):
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()
