"""The API's kept-alive connections (cleanvoice/calls.py) over real sockets on 127.0.0.1:
reuse, a connection the server closed, caps on compressed answers, cancellation."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cvsyncd.cleanvoice.calls import AnswerOverCap, ApiConnections, CallFailed
from tests.conftest import wait_until


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # keep | close (close after each answer without saying so) | drop (answer a connection's
    # first request; close it under the second, answering nothing) | gzip | bomb | hang
    behaviour = "keep"
    peers: list[tuple[str, int]]
    hung: list[socket.socket]

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.peers = []
        self.hung = []
        self.hang_ended = threading.Event()
        self.closed = 0  # connections this side has closed

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        super().shutdown_request(request)
        self.closed += 1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v2/edits/abc"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def do_GET(self) -> None:
        self.answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.answer()

    def answer(self) -> None:
        self.server.peers.append(self.client_address)
        if self.server.behaviour == "drop" and self.server.peers.count(self.client_address) > 1:
            self.close_connection = True  # the kept connection dies under the request
            return
        if self.server.behaviour == "hang":
            # answer nothing; tell when the client goes away (recv sees the end)
            self.connection.settimeout(20)
            try:
                ended = self.connection.recv(1) == b""
            except OSError:
                ended = True
            if ended:
                self.server.hang_ended.set()
            self.close_connection = True
            return
        body = b'{"status": "PENDING"}'
        headers = {"Content-Type": "application/json"}
        if self.server.behaviour == "bomb":
            body = gzip.compress(b"\0" * (8 * 2**20))  # 8 MiB of zeros in a few KiB
            headers["Content-Encoding"] = "gzip"
        elif self.server.behaviour == "gzip":
            body = gzip.compress(b'{"status": "SUCCESS"}')
            headers["Content-Encoding"] = "gzip"
        self.send_response(200)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if self.server.behaviour == "close":
            self.close_connection = True  # closes the socket without "Connection: close"

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def calls(*steps: tuple[str, str, int], between: Callable[[], None] = lambda: None) -> list[object]:
    """Make the calls one after another on one set of connections (``between`` runs before
    every call but the first); each result or error. A POST is sent as a create-edit: not
    idempotent."""

    async def go() -> list[object]:
        connections = ApiConnections({"Accept": "application/json"})
        results: list[object] = []
        try:
            for n, (method, url, cap) in enumerate(steps):
                if n:
                    between()
                try:
                    answer = await connections.request(
                        method,
                        url,
                        body=b"{}" if method == "POST" else None,
                        max_bytes=cap,
                        idempotent=method != "POST",
                    )
                    results.append(answer.body)
                except (CallFailed, AnswerOverCap) as exc:
                    results.append(exc)
        finally:
            connections.close()
        return results

    return asyncio.run(go())


def test_a_kept_connection_carries_the_next_calls(server: Server) -> None:
    results = calls(*[("GET", server.url, 1000)] * 3)
    assert results == [b'{"status": "PENDING"}'] * 3
    assert len(server.peers) == 3 and len(set(server.peers)) == 1  # one connection, three calls


def test_a_connection_the_server_closed_is_not_used_for_the_next_call(server: Server) -> None:
    """The server closes each connection after its answer without saying so: once that
    close has reached this side, the next call goes out on a new connection."""
    server.behaviour = "close"
    results = calls(
        ("GET", server.url, 1000),
        ("GET", server.url, 1000),
        between=lambda: wait_until(lambda: server.closed >= 1, "the server to close", 10),
    )
    assert results == [b'{"status": "PENDING"}'] * 2
    assert len(set(server.peers)) == 2


def test_a_create_always_goes_on_a_new_connection(server: Server) -> None:
    """A kept connection may die as a request goes out on it, and then nobody knows whether
    a create-edit reached Cleanvoice: a create is never sent on one."""
    results = calls(
        ("GET", server.url, 1000), ("POST", server.url, 1000), ("GET", server.url, 1000)
    )
    assert results == [b'{"status": "PENDING"}'] * 3
    first, create, after = server.peers
    assert create != first and after in (first, create)  # the GET after it reuses one


def test_a_poll_whose_kept_connection_dies_under_it_is_sent_again_on_a_new_one(
    server: Server,
) -> None:
    server.behaviour = "drop"
    results = calls(("GET", server.url, 1000), ("GET", server.url, 1000))
    assert results == [b'{"status": "PENDING"}'] * 2
    first, dropped, again = server.peers
    assert dropped == first and again != first  # tried on the kept one, then on a new one


def test_a_compressed_answer_is_decoded_and_capped_after_decoding(server: Server) -> None:
    server.behaviour = "gzip"
    assert calls(("GET", server.url, 1000)) == [b'{"status": "SUCCESS"}']
    server.behaviour = "bomb"
    (result,) = calls(("GET", server.url, 2**20))
    assert isinstance(result, AnswerOverCap)


def test_nothing_listening_is_a_failure_before_anything_was_sent() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (result,) = calls(("POST", f"http://127.0.0.1:{port}/v2/edits", 1000))
    assert isinstance(result, CallFailed) and result.sent is False


def test_cancelling_a_call_that_gets_no_answer_cuts_its_connection(
    server: Server,
) -> None:
    server.behaviour = "hang"

    async def go() -> None:
        connections = ApiConnections({})
        try:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.5):
                    await connections.request("GET", server.url, max_bytes=1000)
        finally:
            connections.close()

    asyncio.run(go())
    # the cancelled call shut its socket: the server sees the end at once, not after 60 s
    wait_until(server.hang_ended.is_set, "the server to see the cancelled call's socket end", 10)
