"""The dashboard's socket: bound before the server starts, with a clear error naming the
config key, and with TCP_NODELAY (else each kept-alive answer waits 40 ms for an ACK)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cvsyncd.config.model import WebSettings
from cvsyncd.errors import CvsyncdError
from cvsyncd.web.server import bind


def test_the_socket_sends_at_once() -> None:
    sock = bind(WebSettings("127.0.0.1", 0), Path("c.toml"))
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        with socket.create_connection(sock.getsockname()):
            accepted, _ = sock.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)

    finally:
        sock.close()


def test_an_address_in_use_names_the_key_and_the_file() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(CvsyncdError) as caught:
            bind(WebSettings("127.0.0.1", port), Path("/etc/cvsyncd/config.toml"))
    text = str(caught.value)
    assert f"/etc/cvsyncd/config.toml: web.listen = '127.0.0.1:{port}'" in text
    assert "pick another port" in text


def test_an_unknown_host_is_named() -> None:
    with pytest.raises(CvsyncdError, match="the host is unknown"):
        bind(WebSettings("no-such-host.invalid", 8750), Path("c.toml"))
