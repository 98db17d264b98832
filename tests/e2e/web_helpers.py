"""Helpers shared by the dashboard's tests: a daemon with [web] on a free loopback port,
and a logged-in (or anonymous) HTTP session that reads the CSRF token from a page."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import httpx

from tests.conftest import Setup

WEB_PASSWORD = "correct-horse-battery-staple"


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def web_setup(
    root: Path,
    base_url: str,
    *,
    password: bool = False,
    host: str = "127.0.0.1",
    after: str = "move",
    extra_folder: str = "",
    preset: str | None = None,
) -> tuple[Setup, str]:
    """A Setup whose config serves the dashboard; return it and the dashboard's URL."""
    more = {"preset": preset} if preset is not None else {}
    setup = Setup(root, base_url, after=after, extra_folder=extra_folder, **more)
    port = free_port(host)
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    section = f'\n[web]\nlisten = "{listen}"\n'
    if password:
        secret = root / "web_password"
        secret.write_text(WEB_PASSWORD + "\n")
        os.chmod(secret, 0o600)
        section += 'password_file = "web_password"\n'
    with setup.config.open("a") as config:
        config.write(section)
    return setup, f"http://{listen}"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def answers(url: str) -> bool:
    """Whether the dashboard at ``url`` answers /healthz yet."""
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code in (200, 503)
    except httpx.TransportError:
        return False
