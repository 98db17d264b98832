"""Fault injection (every kind, on an endpoint where it makes sense) and the admin endpoint."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cvsyncd.emulator import Emulator, FaultSettings
from cvsyncd.urls import is_loopback
from tests.conftest import TLS, fetch, wav_bytes

KEY = "cv-emulator-key"


def only(kind: str, endpoint: str, **options: Any) -> FaultSettings:
    """Settings that inject ``kind`` into every request to ``endpoint``."""
    return FaultSettings(
        rate=1.0, kinds=frozenset({kind}), endpoints=frozenset({endpoint}), **options
    )


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    with Emulator(tmp_path / "emulator", processing_seconds=0.05, seed=7) as running:
        yield running


@pytest.fixture
def api(emulator: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=emulator.base_url, headers={"X-API-Key": KEY}, verify=TLS, timeout=10
    ) as client:
        yield client


def uploaded(api: httpx.Client) -> str:
    url = str(api.post("/upload", params={"filename": "ep.wav"}).json()["signedUrl"])
    assert fetch("PUT", url, content=wav_bytes(0.5, rate=8000)).status_code == 200
    return url.split("?")[0]


CREATE_BODY = {"input": {"files": ["https://example.com/a.mp3"], "config": {}}}


def admin_url(emulator: Emulator, name: str) -> str:
    return emulator.base_url.removesuffix("/v2") + f"/_emulator/{name}"


def admin_state(emulator: Emulator) -> dict[str, Any]:
    state: dict[str, Any] = fetch("GET", admin_url(emulator, "state")).json()
    return state


def edit_count(emulator: Emulator) -> int:
    return len(admin_state(emulator)["edits"])


def finished(api: httpx.Client, edit_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        body: dict[str, Any] = api.get(f"/edits/{edit_id}").json()
        if body["status"] == "FAILURE" or (body["status"] == "SUCCESS" and body["result"]):
            return body
        time.sleep(0.02)
    raise AssertionError("edit did not finish")


def last(emulator: Emulator) -> dict[str, Any]:
    return emulator.requests()[-1]


# -- answered instead of processed --------------------------------------------------------


def test_429_is_not_processed(emulator: Emulator, api: httpx.Client) -> None:
    emulator.set_faults(only("429", "upload", retry_after=2))
    answer = api.post("/upload", params={"filename": "a.wav"})
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "2"
    assert answer.json()["error"]["code"] == "E9001"
    assert last(emulator)["fault"] == "429" and last(emulator)["processed"] is False
    assert admin_state(emulator)["uploads"] == []


@pytest.mark.parametrize("status", ["500", "503"])
def test_server_errors_on_create_are_not_processed(
    emulator: Emulator, api: httpx.Client, status: str
) -> None:
    emulator.set_faults(only(status, "create"))
    answer = api.post("/edits", json=CREATE_BODY)
    assert answer.status_code == int(status) and "error" in answer.json()
    assert last(emulator)["processed"] is False and edit_count(emulator) == 0


def test_502_is_a_proxy_page(emulator: Emulator, api: httpx.Client) -> None:
    emulator.set_faults(only("502", "get"))
    answer = api.get("/edits/x")
    assert answer.status_code == 502 and answer.headers["Content-Type"] == "text/html"


def test_storage_server_errors_are_xml(emulator: Emulator, api: httpx.Client) -> None:
    url = str(api.post("/upload", params={"filename": "a.wav"}).json()["signedUrl"])
    emulator.set_faults(only("503", "put"))
    answer = fetch("PUT", url, content=wav_bytes(0.5, rate=8000))
    assert answer.status_code == 503 and "<Code>SlowDown</Code>" in answer.text
    assert not list((emulator.data_dir / "objects").rglob("object"))


def test_reset_closes_without_answer(emulator: Emulator, api: httpx.Client) -> None:
    edit_id = api.post("/edits", json=CREATE_BODY).json()["id"]
    emulator.set_faults(only("reset", "delete"))
    with pytest.raises(httpx.TransportError):
        api.delete(f"/edits/{edit_id}")
    record = last(emulator)
    assert record["status"] is None and record["fault"] == "reset" and record["processed"] is False
    assert edit_count(emulator) == 1


def test_reset_on_upload_put_stores_nothing(emulator: Emulator, api: httpx.Client) -> None:
    url = str(api.post("/upload", params={"filename": "a.wav"}).json()["signedUrl"])
    emulator.set_faults(only("reset", "put"))
    with pytest.raises(httpx.TransportError):
        fetch("PUT", url, content=wav_bytes(0.5, rate=8000))
    assert not list((emulator.data_dir / "objects").rglob("object"))


@pytest.mark.parametrize("endpoint", ["put", "download"])
def test_expired_url(emulator: Emulator, api: httpx.Client, endpoint: str) -> None:
    url = str(api.post("/upload", params={"filename": "a.wav"}).json()["signedUrl"])
    if endpoint == "download":
        fetch("PUT", url, content=wav_bytes(0.5, rate=8000))
        url = finished(
            api, api.post("/edits", json={"input": {"files": [url], "config": {}}}).json()["id"]
        )["result"]["download_url"]
    emulator.set_faults(only("expired-url", endpoint))
    answer = fetch(
        "PUT" if endpoint == "put" else "GET",
        url,
        content=wav_bytes(0.5, rate=8000) if endpoint == "put" else None,
    )
    assert answer.status_code == 403 and "Request has expired" in answer.text
    assert last(emulator)["processed"] is False and last(emulator)["auth"] == "ok"


# -- processed, then spoiled --------------------------------------------------------------


def test_500_after_create_leaves_the_edit(emulator: Emulator, api: httpx.Client) -> None:
    emulator.set_faults(only("500-after", "create"))
    assert api.post("/edits", json=CREATE_BODY).status_code == 500
    record = last(emulator)
    assert record["processed"] is True and record["edit_id"] and record["status"] == 500
    assert edit_count(emulator) == 1


def test_reset_after_create_leaves_the_edit(emulator: Emulator, api: httpx.Client) -> None:
    emulator.set_faults(only("reset-after", "create"))
    with pytest.raises(httpx.TransportError):
        api.post("/edits", json=CREATE_BODY)
    assert last(emulator)["processed"] is True and last(emulator)["status"] is None
    assert edit_count(emulator) == 1


def test_badjson_after_create_leaves_the_edit(emulator: Emulator, api: httpx.Client) -> None:
    emulator.set_faults(only("badjson", "create"))
    answer = api.post("/edits", json=CREATE_BODY)
    assert answer.status_code == 200
    with pytest.raises(ValueError):
        answer.json()
    assert edit_count(emulator) == 1


@pytest.mark.parametrize("endpoint", ["get", "download"])
def test_truncate_sends_half_the_body(emulator: Emulator, api: httpx.Client, endpoint: str) -> None:
    body = {"input": {"files": [uploaded(api)], "config": {}}}
    result = finished(api, api.post("/edits", json=body).json()["id"])
    url = (
        result["result"]["download_url"]
        if endpoint == "download"
        else f"{emulator.base_url}/edits/{result['task_id']}"
    )
    emulator.set_faults(only("truncate", endpoint))
    with pytest.raises(httpx.RemoteProtocolError):
        fetch("GET", url, headers={"X-API-Key": KEY})
    record = last(emulator)
    assert record["fault"] == "truncate" and record["bytes_out"] > 0


def test_slow_answers_late(emulator: Emulator, api: httpx.Client) -> None:
    emulator.set_faults(only("slow", "account", slow_seconds=0.3))
    began = time.monotonic()
    assert api.get("/account").status_code == 200
    assert time.monotonic() - began >= 0.3


def test_failure_makes_the_edit_fail_later(emulator: Emulator, api: httpx.Client) -> None:
    body = {"input": {"files": [uploaded(api)], "config": {}}}
    emulator.set_faults(only("failure", "create"))
    edit_id = api.post("/edits", json=body).json()["id"]
    emulator.set_faults(FaultSettings())
    assert finished(api, edit_id) == {
        "status": "FAILURE",
        "result": {"message": "Emulated processing failure"},
        "task_id": edit_id,
    }


# -- choosing faults ----------------------------------------------------------------------


def test_kinds_that_do_not_fit_the_endpoint_are_never_injected(
    emulator: Emulator, api: httpx.Client
) -> None:
    emulator.set_faults(
        FaultSettings(
            rate=1.0, kinds=frozenset({"truncate", "failure"}), endpoints=frozenset({"upload"})
        )
    )
    assert api.post("/upload", params={"filename": "a.wav"}).status_code == 200
    assert last(emulator)["fault"] is None


def test_the_seed_makes_faults_reproducible(tmp_path: Path) -> None:
    def sequence(name: str) -> list[int]:
        faults = FaultSettings(
            rate=0.5, kinds=frozenset({"500", "503", "429"}), endpoints=frozenset({"account"})
        )
        with Emulator(tmp_path / name, faults=faults, seed=42) as running:
            url = running.base_url + "/account"
            return [fetch("GET", url, headers={"X-API-Key": KEY}).status_code for _ in range(30)]

    first = sequence("a")
    assert first == sequence("b")
    assert len(set(first)) > 1


def test_fault_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown fault kinds"):
        FaultSettings(kinds=frozenset({"explode"}))
    with pytest.raises(ValueError, match="between 0 and 1"):
        FaultSettings(rate=2)


# -- the admin endpoint -------------------------------------------------------------------


def test_admin_reads_and_changes_faults(emulator: Emulator, api: httpx.Client) -> None:
    url = admin_url(emulator, "faults")
    assert fetch("GET", url).json()["rate"] == 0.0
    changed = fetch("POST", url, json={"rate": 1, "kinds": ["503"], "endpoints": ["account"]})
    assert changed.status_code == 200 and changed.json()["kinds"] == ["503"]
    assert emulator.faults.rate == 1
    assert api.get("/account").status_code == 503
    refused = fetch("POST", url, json={"kinds": ["explode"]})
    assert refused.status_code == 400 and "explode" in refused.json()["error"]["message"]
    assert fetch("POST", url, json={"speed": 1}).status_code == 400
    assert fetch("POST", url, content=b"[1]").status_code == 400


def test_admin_needs_no_key_and_is_never_faulted(emulator: Emulator) -> None:
    emulator.set_faults(FaultSettings(rate=1.0))
    answer = fetch("GET", admin_url(emulator, "state"))
    assert answer.status_code == 200 and answer.json()["edits"] == []
    assert last(emulator)["endpoint"] == "admin" and last(emulator)["fault"] is None


def test_only_loopback_clients_are_admins() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("192.168.1.5") and not is_loopback("example.org")
