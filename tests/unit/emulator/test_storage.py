"""The emulator's presigned storage: signatures, streamed PUTs, ranged GETs, keep-alive."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from cvsyncd.emulator import Emulator
from tests.conftest import TLS, fetch, wav_bytes

KEY = "cv-emulator-key"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    with Emulator(tmp_path / "emulator", processing_seconds=0.1) as running:
        yield running


@pytest.fixture
def api(emulator: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=emulator.base_url, headers={"X-API-Key": KEY}, verify=TLS, timeout=10
    ) as client:
        yield client


def signed_upload_url(api: httpx.Client, name: str = "ep1.wav") -> str:
    return str(api.post("/upload", params={"filename": name}).json()["signedUrl"])


def result_of(
    api: httpx.Client, file_url: str, config: dict[str, Any] | None = None
) -> dict[str, Any]:
    edit_id = api.post(
        "/edits", json={"input": {"files": [file_url], "config": config or {}}}
    ).json()["id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        body: dict[str, Any] = api.get(f"/edits/{edit_id}").json()
        if body["status"] == "FAILURE" or (body["status"] == "SUCCESS" and body["result"]):
            return body
        time.sleep(0.03)
    raise AssertionError("edit did not finish")


def stored_objects(emulator: Emulator) -> list[Path]:
    return sorted((emulator.data_dir / "objects").rglob("object*"))


# -- signatures ---------------------------------------------------------------------------


def test_altered_signature_is_refused(api: httpx.Client, emulator: Emulator) -> None:
    url = signed_upload_url(api)
    tampered = url[:-4] + ("0000" if not url.endswith("0000") else "1111")
    answer = fetch("PUT", tampered, content=b"ID3data")
    assert answer.status_code == 403
    assert answer.headers["Content-Type"] == "application/xml"
    assert "<Code>SignatureDoesNotMatch</Code>" in answer.text
    other_path = url.replace("/ep1.wav?", "/ep2.wav?")
    assert fetch("PUT", other_path, content=b"ID3data").status_code == 403
    assert emulator.requests()[-1]["auth"] == "wrong"
    assert stored_objects(emulator) == []


def test_url_without_signature_is_refused(api: httpx.Client) -> None:
    answer = fetch("PUT", signed_upload_url(api).split("?")[0], content=b"ID3data")
    assert answer.status_code == 403 and "<Code>AccessDenied</Code>" in answer.text


def test_expired_url_is_refused(api: httpx.Client, emulator: Emulator) -> None:
    url = signed_upload_url(api)
    parts = urlsplit(url)
    old_query = emulator.signer.sign("PUT", unquote(parts.path), now=time.time() - 7200)
    answer = fetch(
        "PUT", f"{parts.scheme}://{parts.netloc}{parts.path}?{old_query}", content=b"ID3"
    )
    assert answer.status_code == 403
    assert "<Code>AccessDenied</Code>" in answer.text and "Request has expired" in answer.text


def test_upload_url_cannot_download_and_result_url_cannot_upload(api: httpx.Client) -> None:
    url = signed_upload_url(api)
    assert fetch("PUT", url, content=wav_bytes(0.2)).status_code == 200
    assert "SignatureDoesNotMatch" in fetch("GET", url).text
    download = result_of(api, url)["result"]["download_url"]
    assert fetch("PUT", download, content=b"x").status_code == 403
    assert fetch("HEAD", download).status_code == 403  # presigned for GET only, like S3


# -- uploads ------------------------------------------------------------------------------


def test_chunked_upload_is_stored_whole(api: httpx.Client) -> None:
    data = wav_bytes(1.0)
    url = signed_upload_url(api)

    def blocks() -> Iterator[bytes]:
        for start in range(0, len(data), 7000):
            yield data[start : start + 7000]

    stored = fetch("PUT", url, content=blocks())
    assert stored.status_code == 200 and stored.headers["ETag"].startswith('"')
    assert fetch("GET", result_of(api, url.split("?")[0])["result"]["download_url"]).content == data


def test_put_again_replaces_the_object(api: httpx.Client) -> None:
    url = signed_upload_url(api)
    fetch("PUT", url, content=b"not audio")
    fetch("PUT", url, content=wav_bytes(0.3))
    assert result_of(api, url.split("?")[0])["status"] == "SUCCESS"


def test_put_needs_a_length(api: httpx.Client, emulator: Emulator) -> None:
    parts = urlsplit(signed_upload_url(api))
    with socket.create_connection((parts.hostname, parts.port)) as raw:
        head = f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        raw.sendall(head.encode())
        answer = raw.makefile("rb").read()
    assert answer.startswith(b"HTTP/1.1 411") and b"MissingContentLength" in answer


def test_a_put_that_dies_midway_leaves_no_object(api: httpx.Client, emulator: Emulator) -> None:
    url = signed_upload_url(api)
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port)) as raw:
        head = (
            f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
        )
        raw.sendall(head.encode() + wav_bytes(0.1)[:3000])
    deadline = time.monotonic() + 5
    while emulator.requests()[-1]["endpoint"] != "put" and time.monotonic() < deadline:
        time.sleep(0.02)
    record = emulator.requests()[-1]
    assert (
        record["endpoint"] == "put" and record["processed"] is False and record["bytes_in"] == 3000
    )
    assert stored_objects(emulator) == []
    failed = result_of(api, url.split("?")[0])
    assert failed["status"] == "FAILURE" and "no such object" in failed["result"]["message"]


def test_keep_alive_survives_refused_requests_with_bodies(
    api: httpx.Client, emulator: Emulator
) -> None:
    parts = urlsplit(emulator.base_url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    try:
        for key in ("wrong", KEY):
            connection.request(
                "POST", "/v2/edits", body=b'{"input": {}}', headers={"X-API-Key": key}
            )
            answer = connection.getresponse()
            answer.read()
            assert answer.status in (401, 422)
        connection.request("GET", "/v2/account", headers={"X-API-Key": KEY})
        assert connection.getresponse().status == 200
    finally:
        connection.close()
    assert {r["status"] for r in emulator.requests()} == {401, 422, 200}


# -- downloads ----------------------------------------------------------------------------


@pytest.fixture
def download(api: httpx.Client) -> tuple[str, bytes]:
    data = wav_bytes(0.5)
    url = signed_upload_url(api)
    fetch("PUT", url, content=data)
    return result_of(api, url)["result"]["download_url"], data


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=100-", 100, None),
        ("bytes=-10", -10, None),
        ("bytes=10-999999", 10, None),
    ],
)
def test_ranges(download: tuple[str, bytes], header: str, first: int, last: int | None) -> None:
    url, data = download
    answer = fetch("GET", url, headers={"Range": header})
    assert answer.status_code == 206
    expected = data[first : None if last is None else last + 1]
    assert answer.content == expected
    start = first if first >= 0 else len(data) + first
    assert (
        answer.headers["Content-Range"] == f"bytes {start}-{start + len(expected) - 1}/{len(data)}"
    )
    assert answer.headers["Accept-Ranges"] == "bytes"


def test_unsatisfiable_range(download: tuple[str, bytes]) -> None:
    url, data = download
    answer = fetch("GET", url, headers={"Range": f"bytes={len(data)}-"})
    assert answer.status_code == 416
    assert answer.headers["Content-Range"] == f"bytes */{len(data)}"
    assert "<Code>InvalidRange</Code>" in answer.text


def test_unparsable_range_gives_the_whole_file(download: tuple[str, bytes]) -> None:
    url, data = download
    answer = fetch("GET", url, headers={"Range": "bytes=0-1,5-6"})
    assert answer.status_code == 200 and answer.content == data


def test_download_needs_no_api_key_and_streams(
    download: tuple[str, bytes], emulator: Emulator
) -> None:
    url, data = download
    with httpx.stream("GET", url, verify=TLS) as answer:
        received = b"".join(answer.iter_bytes(1024))
    assert received == data
    record = emulator.requests()[-1]
    assert (
        record["endpoint"] == "download"
        and record["auth"] == "ok"
        and record["bytes_out"] == len(data)
    )


def test_storage_refuses_other_methods(download: tuple[str, bytes]) -> None:
    url, _ = download
    answer = fetch("POST", url)
    assert answer.status_code == 405 and "MethodNotAllowed" in answer.text
