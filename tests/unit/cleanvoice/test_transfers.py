"""Signed-URL transfers over real sockets on 127.0.0.1: what a storage server (or whatever
sits in front of it) may do, and what a cancelled transfer leaves behind."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import io
import shutil
import socket
import ssl
import subprocess
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from cvsyncd.cleanvoice.transfers import (
    MAX_REDIRECTS,
    SENDFILE_STEP,
    Transfers,
    _Threads,
    proxy_for,
)
from cvsyncd.errors import PermanentApiError, TransientApiError
from tests.conftest import wait_until

MiB = 1024 * 1024
Answer = Callable[[socket.socket, str, dict[str, str]], None]


def _read_head(conn: socket.socket) -> tuple[str, dict[str, str]]:
    """Read a request's head and nothing after it; return its request line and headers
    (lower-cased names). The body, if any, is left in the socket for the answer."""
    data = b""
    while not data.endswith(b"\r\n\r\n"):
        if isinstance(conn, ssl.SSLSocket):  # no peeking through TLS: a byte at a time
            data += conn.recv(1) or b"!"
        else:
            seen = conn.recv(65536, socket.MSG_PEEK)
            end = seen.find(b"\r\n\r\n")
            data += conn.recv(end + 4 if end >= 0 else len(seen)) or b"!"
        if data.endswith(b"!") or len(data) > 65536:
            raise ConnectionError("the client went away, or sent no end of its head")
    line, *rest = data[:-4].decode("latin-1").split("\r\n")
    return line, {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in rest)}


class Server:
    """A raw HTTP server on 127.0.0.1: ``answer`` gets each connection after its request
    head, and does what the test wants with the socket."""

    def __init__(self, answer: Answer, tls: ssl.SSLContext | None = None):
        self.answer = answer
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        if tls is not None:
            self.listener = tls.wrap_socket(self.listener, server_side=True)
        self.base = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.release = threading.Event()  # connections an answer keeps open end with this
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                line, headers = _read_head(conn)
            except OSError:
                return
            self.requests.append((line, headers))
            with suppress(OSError):  # the client went away: that is its test's business
                self.answer(conn, line.split(" ")[1], headers)

    def close(self) -> None:
        self.release.set()
        self.listener.close()


@contextmanager
def serving(answer: Answer) -> Iterator[Server]:
    server = Server(answer)
    try:
        yield server
    finally:
        server.close()


def respond(conn: socket.socket, status: str, headers: dict[str, str], body: bytes = b"") -> None:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    conn.sendall(f"HTTP/1.1 {status}\r\n{head}\r\n".encode() + body)


def transfer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "cvsyncd-transfer" and t.is_alive()]


class SignallingSink(io.BytesIO):
    """A sink that says when the first bytes arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()

    def write(self, data: bytes) -> int:  # type: ignore[override]
        n = super().write(data)
        self.started.set()
        return n


def test_cancelling_a_download_cuts_its_connection_and_ends_its_thread() -> None:
    def stall(conn: socket.socket, path: str, headers: dict[str, str]) -> None:
        respond(conn, "200 OK", {"Content-Length": str(100 * MiB)}, b"x" * MiB)
        server.release.wait(60)  # then nothing more: the client must cut it off

    with serving(stall) as server:
        sink = SignallingSink()

        async def go() -> None:
            task = asyncio.create_task(Transfers("t").download(f"{server.base}/f?sig=1", sink))
            assert await asyncio.to_thread(sink.started.wait, 30), "no bytes arrived"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)  # not the 120 s read timeout

        asyncio.run(go())
        # the thread let go of the sink before the await ended, and ends itself just after
        wait_until(lambda: not transfer_threads(), "the transfer thread to end", 5)
        kept = sink.tell()
        assert 0 < kept <= MiB


class ThreadNotingSink(io.BytesIO):
    """A sink that notes which threads wrote to it."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[threading.Thread] = set()  # not idents: those are reused

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.threads.add(threading.current_thread())
        return super().write(data)


def test_transfers_at_once_run_in_threads_of_their_own_which_later_ones_reuse() -> None:
    both_asked = threading.Barrier(2, timeout=20)

    def answer(conn: socket.socket, path: str, headers: dict[str, str]) -> None:
        if path.startswith("/together"):
            both_asked.wait()  # neither is answered until both are being read at once
        respond(conn, "200 OK", {"Content-Length": str(MiB)}, b"x" * MiB)

    async def fetch(url: str) -> ThreadNotingSink:
        sink = ThreadNotingSink()
        assert await Transfers("t").download(url, sink) == MiB
        return sink

    with serving(answer) as server:

        async def go() -> tuple[
            list[ThreadNotingSink], set[threading.Thread], list[ThreadNotingSink]
        ]:
            together = await asyncio.gather(
                fetch(f"{server.base}/together/1"), fetch(f"{server.base}/together/2")
            )
            there = {t for t in threading.enumerate() if t.name.startswith("cvsyncd-transfer")}
            after = [await fetch(f"{server.base}/after/{n}") for n in range(4)]
            return list(together), there, after

        together, there, after = asyncio.run(go())
    first, second = (sink.threads for sink in together)
    assert len(first) == len(second) == 1 and first != second
    # one after another, each took a thread already there (a transfer's thread is free
    # again before its result is told): no new thread was started
    assert set().union(*(sink.threads for sink in after)) <= there


def test_a_transfer_thread_left_idle_ends() -> None:
    threads = _Threads(keep_seconds=0.2)
    ran: list[threading.Thread] = []

    def work() -> Callable[[], None]:
        ran.append(threading.current_thread())
        return lambda: None

    threads.run(work)
    wait_until(lambda: bool(ran), "the work to run", 10)
    wait_until(lambda: not ran[0].is_alive(), "the idle transfer thread to end", 10)
    assert not threads._idle  # and nothing hands work to it any more


def test_redirects_are_followed_with_each_hop_checked_and_a_limit() -> None:
    body = b"the cleaned file"

    def redirects(conn: socket.socket, path: str, headers: dict[str, str]) -> None:
        if path.startswith("/hop/"):
            n = int(path.split("/")[2].split("?")[0])
            if n < 3:
                respond(conn, "307 Temporary Redirect", {"Location": f"/hop/{n + 1}?sig=x"})
                return
            respond(conn, "200 OK", {"Content-Length": str(len(body))}, body)
        elif path.startswith("/loop"):
            respond(conn, "302 Found", {"Location": "/loop?sig=again", "Content-Length": "0"})
        elif path.startswith("/away"):
            respond(conn, "301 Moved", {"Location": "http://storage.example/file?sig=x"})

    with serving(redirects) as server:
        transfers = Transfers("t")
        sink = io.BytesIO()
        size = asyncio.run(transfers.download(f"{server.base}/hop/0?sig=1", sink))
        assert (size, sink.getvalue()) == (len(body), body)
        assert [line.split()[1] for line, _ in server.requests] == [
            "/hop/0?sig=1",
            "/hop/1?sig=x",
            "/hop/2?sig=x",
            "/hop/3?sig=x",
        ]

        server.requests.clear()
        with pytest.raises(TransientApiError, match=f"more than {MAX_REDIRECTS} redirects"):
            asyncio.run(transfers.download(f"{server.base}/loop?sig=1", io.BytesIO()))
        assert len(server.requests) == MAX_REDIRECTS + 1

        with pytest.raises(PermanentApiError, match=r"refusing to transfer a file over http"):
            asyncio.run(transfers.download(f"{server.base}/away?sig=1", io.BytesIO()))
    wait_until(lambda: not transfer_threads(), "the transfer threads to end", 5)


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("deflate", _raw_deflate)],
    ids=["gzip", "zlib-deflate", "raw-deflate"],
)
def test_a_body_compressed_anyway_is_decoded(encoding: str, pack: Callable[[bytes], bytes]) -> None:
    original = bytes(range(256)) * (12 * 1024)  # 3 MiB, which packs into far less
    packed = pack(original)

    def compressing(conn: socket.socket, path: str, headers: dict[str, str]) -> None:
        assert headers["accept-encoding"] == "identity"
        head = {"Content-Encoding": encoding, "Content-Length": str(len(packed))}
        respond(conn, "200 OK", head, packed)

    with serving(compressing) as server:
        sink = io.BytesIO()
        size = asyncio.run(Transfers("t").download(f"{server.base}/f", sink))
        assert size == len(original)
        assert sink.getvalue() == original

        # what it unpacks to counts against the size cap, however small the packed body
        with pytest.raises(PermanentApiError, match=f"more than {MiB} bytes"):
            asyncio.run(Transfers("t", max_download_bytes=MiB).download(f"{server.base}/f", sink))


@pytest.mark.parametrize(
    ("content_range", "error"),
    [
        ("bytes 0-99/300", "cut short: 100 of 300 bytes"),
        ("bytes 100-199/300", "a part starting at byte 100, not 0"),
        ("bytes 0-99/*", "of unknown size, though the whole was asked for"),
        (None, "without a readable Content-Range"),
    ],
    ids=["the-start", "the-middle", "size-unknown", "no-range"],
)
def test_a_part_of_the_file_when_the_whole_was_asked_for_is_not_the_file(
    content_range: str | None, error: str
) -> None:
    """A 206 to a download that asked for no part: a server (or a proxy) that lies so
    must not leave a truncated output that passes for the cleaned file."""

    def partial(conn: socket.socket, path: str, headers: dict[str, str]) -> None:
        assert "range" not in headers
        head = {"Content-Length": "100"}
        if content_range is not None:
            head["Content-Range"] = content_range
        respond(conn, "206 Partial Content", head, b"x" * 100)

    with serving(partial) as server, pytest.raises(TransientApiError) as caught:
        asyncio.run(Transfers("t").download(f"{server.base}/f", io.BytesIO()))
    assert error in caught.value.message


def test_a_part_that_is_the_whole_file_is_taken() -> None:
    def whole(conn: socket.socket, path: str, headers: dict[str, str]) -> None:
        head = {"Content-Length": "100", "Content-Range": "bytes 0-99/100"}
        respond(conn, "206 Partial Content", head, b"y" * 100)

    with serving(whole) as server:
        sink = io.BytesIO()
        assert asyncio.run(Transfers("t").download(f"{server.base}/f", sink)) == 100
        assert sink.getvalue() == b"y" * 100


def test_an_encoding_that_cannot_be_undone_is_named() -> None:
    def brotli(conn: socket.socket, path: str, headers: dict[str, str]) -> None:
        respond(conn, "200 OK", {"Content-Encoding": "br", "Content-Length": "4"}, b"\x8b\x01ab")

    with serving(brotli) as server, pytest.raises(PermanentApiError, match="encoded as 'br'"):
        asyncio.run(Transfers("t").download(f"{server.base}/f", io.BytesIO()))


def test_an_upload_refused_before_its_body_is_read_reports_the_status() -> None:
    def refuse(conn: socket.socket, path: str, headers: dict[str, str]) -> None:
        respond(conn, "403 Forbidden", {"Content-Length": "0", "Connection": "close"})
        conn.shutdown(socket.SHUT_WR)  # the answer is out; the body is never read

    with serving(refuse) as server:
        source = io.BytesIO(b"\0" * (32 * MiB))  # far more than the socket buffers hold
        upload = Transfers("t").upload_file(f"{server.base}/up?sig=1", source, 32 * MiB)
        with pytest.raises(TransientApiError) as info:
            asyncio.run(upload)
    assert info.value.status == 403
    assert "sig=1" not in str(info.value)


@pytest.mark.parametrize(
    ("from_file", "sha256"),
    [(True, False), (True, True), (False, False)],
    ids=["a-file-by-sendfile", "a-file-hashed-on-the-way", "a-stream"],
)
def test_an_upload_sends_every_byte_and_reports_progress_on_the_event_loop(
    tmp_path: Path, from_file: bool, sha256: bool
) -> None:
    size = 3 * SENDFILE_STEP // 2 + 12345  # two steps of progress, many buffers
    received = bytearray()

    def sink(conn: socket.socket, path: str, headers: dict[str, str]) -> None:
        want = int(headers["content-length"])
        while len(received) < want:
            chunk = conn.recv(want - len(received))
            if not chunk:
                return
            received.extend(chunk)
        respond(conn, "200 OK", {"Content-Length": "0"})

    seen: list[tuple[int, int]] = []
    data = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    (tmp_path / "ep.wav").write_bytes(b"head" + data)

    async def go() -> tuple[int, str | None]:
        def progress(sent: int) -> None:
            seen.append((threading.get_ident(), sent))

        with open(tmp_path / "ep.wav", "rb") if from_file else io.BytesIO(b"head" + data) as f:
            f.read(4)  # sent from where the file stands
            digest = await Transfers("t").upload_file(
                f"{server.base}/up", f, size, on_progress=progress, sha256=sha256
            )
        # no wait needed: the thread queues its last progress call before the outcome,
        # and the loop runs callbacks in the order they were queued
        return threading.get_ident(), digest

    with serving(sink) as server:
        loop_thread, digest = asyncio.run(go())
    assert bytes(received) == data
    assert digest == (hashlib.sha256(data).hexdigest() if sha256 else None)
    assert {ident for ident, _ in seen} == {loop_thread}
    counts = [sent for _, sent in seen]
    assert counts == sorted(counts) and counts[-1] == size
    assert len(counts) == 2  # one a step, not one a buffer


def test_which_proxy_the_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    storage = urlsplit("https://storage.example/f?sig=1")
    assert proxy_for(storage) is None

    monkeypatch.setenv("https_proxy", "http://proxy.lan:3128")
    found = proxy_for(storage)
    assert found is not None and (found.hostname, found.port) == ("proxy.lan", 3128)
    assert proxy_for(urlsplit("http://127.0.0.1:8080/f")) is None  # this machine: never

    monkeypatch.setenv("no_proxy", "other.example,storage.example")
    assert proxy_for(storage) is None

    monkeypatch.setenv("no_proxy", "")
    monkeypatch.setenv("https_proxy", "socks5://user:secret@proxy.lan:1080")
    with pytest.raises(TransientApiError, match="only go through an http://") as info:
        proxy_for(storage)
    assert "secret" not in str(info.value)


def _certificate(folder: Path, host: str) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", f"/CN={host}", "-addext", f"subjectAltName=DNS:{host}"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def test_https_goes_through_the_proxy_the_environment_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CONNECT proxy on 127.0.0.1 tunnels to a TLS server on 127.0.0.1 that holds a
    certificate for storage.example: the client trusts it through SSL_CERT_FILE, as a
    user's own CA would be trusted, and no name is ever looked up."""
    host, body = "storage.example", b"cleaned audio over TLS"
    cert, key = _certificate(tmp_path, host)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)

    def storage(conn: socket.socket, path: str, headers: dict[str, str]) -> None:
        respond(conn, "200 OK", {"Content-Length": str(len(body))}, body)

    origin = Server(storage, tls)
    tunnels: list[tuple[str, dict[str, str]]] = []

    def tunnel(conn: socket.socket, target: str, headers: dict[str, str]) -> None:
        port = int(origin.base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as upstream:
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            pump = threading.Thread(target=_pipe, args=(upstream, conn), daemon=True)
            pump.start()
            _pipe(conn, upstream)
            pump.join(10)

    with serving(tunnel) as proxy:
        proxy.requests = tunnels
        monkeypatch.setenv("https_proxy", f"http://cv:p%40ss@{proxy.base.split('//')[1]}")
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        sink = io.BytesIO()
        try:
            size = asyncio.run(Transfers("t").download(f"https://{host}/f?sig=1", sink))
        finally:
            origin.close()
    assert (size, sink.getvalue()) == (len(body), body)
    assert [line.rsplit(" ", 1)[0] for line, _ in tunnels] == [f"CONNECT {host}:443"]
    credentials = base64.b64encode(b"cv:p@ss").decode()
    assert tunnels[0][1]["proxy-authorization"] == f"Basic {credentials}"


def _pipe(source: socket.socket, dest: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            dest.sendall(chunk)
        dest.shutdown(socket.SHUT_WR)
    except OSError:
        pass
