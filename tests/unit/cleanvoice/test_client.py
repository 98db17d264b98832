"""The real Cleanvoice client over real HTTP against the emulator on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import io
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest

from cvsyncd.cleanvoice.client import CleanvoiceClient, file_url_of, is_edit_id
from cvsyncd.cleanvoice.transfers import _Pace
from cvsyncd.emulator import Emulator, FaultSettings
from cvsyncd.errors import (
    AccountApiError,
    AmbiguousApiError,
    PermanentApiError,
    TransientApiError,
)
from tests.conftest import EMULATOR_KEY, make_wav


@pytest.fixture
def emulator(canonical_emulator: Emulator) -> Emulator:
    """These tests check the client's reading of each exact answer: the canonical shapes
    (varied mode has tests of its own)."""
    return canonical_emulator


T = TypeVar("T")


def run(
    emulator: Emulator, body: Callable[[CleanvoiceClient], Awaitable[T]], key: str = EMULATOR_KEY
) -> T:
    async def go() -> T:
        async with CleanvoiceClient(emulator.base_url, key) as client:
            return await body(client)

    return asyncio.run(go())


def test_the_whole_flow(tmp_path: Path, emulator: Emulator) -> None:
    wav = make_wav(tmp_path / "ep 1 (final).wav", seconds=2)
    size = wav.stat().st_size

    async def flow(client: CleanvoiceClient) -> tuple[Any, ...]:
        signed = await client.request_upload_url("ep_1_final.wav")
        sent: list[int] = []
        digest = await client.upload_file(signed, wav, size, on_progress=sent.append, sha256=True)
        edit_id = await client.create_edit(
            [file_url_of(signed)], {"fillers": True, "transcription": True}
        )
        status = await client.get_edit(edit_id)
        deadline = time.monotonic() + 30
        while not status.succeeded:
            assert not status.failed
            assert time.monotonic() < deadline, f"still {status.status} after 30 s"
            await asyncio.sleep(0.2)
            status = await client.get_edit(edit_id)
        sink = io.BytesIO()
        got = await client.download(str(status.result["download_url"]), sink)  # type: ignore[index]
        await client.delete_edit(edit_id)
        after = await client.get_edit(edit_id)
        account = await client.account()
        return signed, sent, digest, status, sink.getvalue(), got, after, account

    signed, sent, digest, status, data, got, after, account = run(emulator, flow)
    assert sent[-1] == size
    assert digest == hashlib.sha256(wav.read_bytes()).hexdigest()
    assert data == wav.read_bytes() and got == size
    assert status.result["transcription"]["paragraphs"]
    assert after.status == "PENDING" and after.progress is None  # deleted: unknown id
    assert account["credit"]["total"] > 0
    assert "?" not in file_url_of(signed)
    uploads = [r for r in emulator.requests() if r["endpoint"] == "put"]
    assert uploads[0]["bytes_in"] == size and uploads[0]["status"] == 200


def test_wrong_key_is_an_account_error(emulator: Emulator) -> None:
    with pytest.raises(AccountApiError) as info:
        run(emulator, lambda c: c.request_upload_url("a.wav"), key="not-the-key")
    assert info.value.status == 401
    assert "not-the-key" not in str(info.value)


def test_a_refused_config_is_permanent(emulator: Emulator) -> None:
    with pytest.raises(PermanentApiError) as info:
        run(emulator, lambda c: c.create_edit(["http://127.0.0.1:1/x.wav"], {"fillerz": True}))
    assert info.value.status in (400, 422)
    assert "fillerz" in str(info.value)


def test_429_is_transient_with_retry_after(emulator: Emulator) -> None:
    emulator.set_faults(FaultSettings(rate=1.0, kinds=frozenset({"429"}), retry_after=7))
    with pytest.raises(TransientApiError) as info:
        run(emulator, lambda c: c.create_edit(["http://127.0.0.1:1/x.wav"], {}))
    assert info.value.status == 429 and info.value.retry_after == 7
    assert not [r for r in emulator.requests() if r["endpoint"] == "create" and r["processed"]]


@pytest.mark.parametrize("kind", ["reset-after", "500-after", "badjson"])
def test_a_create_whose_answer_is_lost_is_ambiguous(emulator: Emulator, kind: str) -> None:
    emulator.set_faults(
        FaultSettings(rate=1.0, kinds=frozenset({kind}), endpoints=frozenset({"create"}))
    )
    with pytest.raises(AmbiguousApiError):
        run(emulator, lambda c: c.create_edit(["http://127.0.0.1:1/x.wav"], {}))
    # the edit does exist: this is exactly why the daemon must not resubmit blindly
    assert [r for r in emulator.requests() if r["endpoint"] == "create" and r["processed"]]


@pytest.mark.parametrize("kind", ["reset", "500", "503", "badjson"])
def test_idempotent_calls_fail_transiently(emulator: Emulator, kind: str) -> None:
    emulator.set_faults(
        FaultSettings(rate=1.0, kinds=frozenset({kind}), endpoints=frozenset({"get"}))
    )
    with pytest.raises(TransientApiError):
        run(emulator, lambda c: c.get_edit("0000"))


def test_nothing_listening_is_transient_even_for_a_create() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there

    async def go() -> None:
        async with CleanvoiceClient(f"http://127.0.0.1:{port}/v2", EMULATOR_KEY) as client:
            await client.create_edit(["http://127.0.0.1/x.wav"], {})

    with pytest.raises(TransientApiError, match="cannot reach"):
        asyncio.run(go())


def test_expired_upload_url_is_transient(tmp_path: Path, emulator: Emulator) -> None:
    wav = make_wav(tmp_path / "a.wav")
    emulator.set_faults(
        FaultSettings(rate=1.0, kinds=frozenset({"expired-url"}), endpoints=frozenset({"put"}))
    )

    async def go(client: CleanvoiceClient) -> str | None:
        signed = await client.request_upload_url("a.wav")
        return await client.upload_file(signed, wav, wav.stat().st_size)

    with pytest.raises(TransientApiError) as info:
        run(emulator, go)
    assert info.value.status == 403
    assert "X-Amz-Signature" not in str(info.value)


def test_truncated_download_is_detected(tmp_path: Path, emulator: Emulator) -> None:
    wav = make_wav(tmp_path / "a.wav", seconds=3)

    async def go(client: CleanvoiceClient) -> int:
        signed = await client.request_upload_url("a.wav")
        await client.upload_file(signed, wav, wav.stat().st_size)
        edit_id = await client.create_edit([file_url_of(signed)], {})
        status = await client.get_edit(edit_id)
        deadline = time.monotonic() + 30
        while not status.succeeded:
            assert time.monotonic() < deadline, f"still {status.status} after 30 s"
            await asyncio.sleep(0.2)
            status = await client.get_edit(edit_id)
        emulator.set_faults(
            FaultSettings(
                rate=1.0, kinds=frozenset({"truncate"}), endpoints=frozenset({"download"})
            )
        )
        return await client.download(str(status.result["download_url"]), io.BytesIO())  # type: ignore[index]

    with pytest.raises(TransientApiError, match=r"cut short|broke off"):
        run(emulator, go)


def test_file_that_shrinks_during_upload_is_caught(tmp_path: Path, emulator: Emulator) -> None:
    wav = make_wav(tmp_path / "a.wav", seconds=1)
    claimed = wav.stat().st_size + 5000  # as if the file had been bigger when it was taken

    async def go(client: CleanvoiceClient) -> str | None:
        signed = await client.request_upload_url("a.wav")
        return await client.upload_file(signed, wav, claimed)

    with pytest.raises(TransientApiError, match="changed while being uploaded"):
        run(emulator, go)


class _HeaderSink(BaseHTTPRequestHandler):
    """A plain HTTP server that records the headers of every request it gets."""

    seen: ClassVar[list[dict[str, str]]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        if length:
            self.rfile.read(length)
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        body = b"result bytes"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


def test_the_key_is_never_sent_to_upload_or_download_urls(tmp_path: Path) -> None:
    wav = make_wav(tmp_path / "a.wav")
    _HeaderSink.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HeaderSink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    async def go() -> None:
        async with CleanvoiceClient("http://127.0.0.1:9/v2", "secret-key-xyz") as client:
            await client.upload_file(f"{base}/up/a.wav?sig=1", wav, wav.stat().st_size)
            await client.download(f"{base}/down/a.wav?sig=2", io.BytesIO())

    try:
        asyncio.run(go())
    finally:
        server.shutdown()
        server.server_close()
    assert len(_HeaderSink.seen) == 2
    for headers in _HeaderSink.seen:
        assert "x-api-key" not in headers
        assert "secret-key-xyz" not in str(headers)
    assert _HeaderSink.seen[0]["content-length"] == str(wav.stat().st_size)


def test_account_url_is_v1_beside_the_v2_base() -> None:
    client = CleanvoiceClient("https://api.cleanvoice.ai/v2", "k")
    assert client.account_url == "https://api.cleanvoice.ai/v1/account"
    asyncio.run(client.aclose())


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("9a14b8fe-3604-43e4-8c06-06a7491ae8fc", True),
        ("edit_42", True),
        ("../../v1/account", False),
        ("a" * 128, True),
        ("a" * 129, False),
        ("", False),
        ("9a14 b8fe", False),
        ("é", False),
        ("-leading", False),
    ],
)
def test_edit_ids_that_may_go_into_a_url(value: str, ok: bool) -> None:
    assert is_edit_id(value) is ok


def test_a_stalled_transfer_is_noticed_after_a_minute() -> None:
    now = [0.0]
    pace = _Pace(32 * 1024, clock=lambda: now[0])
    assert pace.keeps_up(100)  # within the first minute: no verdict yet
    now[0] = 61.0
    assert not pace.keeps_up(1)  # 101 bytes in a minute
    fast = _Pace(32 * 1024, clock=lambda: now[0])
    now[0] = 122.0
    assert fast.keeps_up(40 * 1024)  # a full minute at more than the pace: a new window
    assert fast.in_window == 0
