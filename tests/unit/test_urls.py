"""The one loopback rule: every part that allows plain http (the config's base URL and
webhooks, the client's transfer URLs, the emulator's admin endpoint) asks the same question."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvsyncd.cleanvoice.transfers import check_transfer_url
from cvsyncd.config.folders import check_notify_url
from cvsyncd.config.loading import check_base_url
from cvsyncd.config.schema import Invalid, Reader
from cvsyncd.errors import PermanentApiError
from cvsyncd.urls import is_loopback, is_loopback_url

LOOPBACK = [
    "127.0.0.1",
    "127.0.0.2",
    "127.255.255.254",
    "::1",
    "[::1]",
    "localhost",
    "LOCALHOST",
    "::ffff:127.0.0.2",
    "::1%lo",
]
READER = Reader("cvsyncd.toml", Path("."), {})
ELSEWHERE = [
    "10.0.0.1",
    "192.168.1.5",
    "example.org",
    "localhost.example.org",
    "127.0.0.1.nip.io",
    "::ffff:10.0.0.1",
    "0.0.0.0",
    "",
    "[::2]",
]


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ELSEWHERE)
def test_other_hosts(host: str) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize("host", ["127.0.0.2", "[::1]", "localhost"])
def test_every_user_of_plain_http_agrees(host: str) -> None:
    url = f"http://{host}:8765/v2"
    assert is_loopback_url(url)
    check_transfer_url(f"{url}/storage/a.wav")  # does not raise
    assert check_base_url(url, READER) == url
    assert check_notify_url(f"{url}/hook", READER) == f"{url}/hook"


@pytest.mark.parametrize("host", ["10.0.0.2", "example.org", "localhost.example.org"])
def test_every_user_of_plain_http_refuses_the_rest(host: str) -> None:
    url = f"http://{host}:8765/v2"
    assert not is_loopback_url(url)
    with pytest.raises(PermanentApiError):
        check_transfer_url(f"{url}/storage/a.wav")
    with pytest.raises(Invalid):
        check_base_url(url, READER)
    with pytest.raises(Invalid):
        check_notify_url(f"{url}/hook", READER)
