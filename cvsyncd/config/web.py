"""The ``[web]`` section: where the dashboard listens, and the password that guards it.

Without the section there is no dashboard. ``listen`` is ``host:port`` (an IPv6 address in
brackets: ``[::1]:8750``). Listening on anything but this machine (loopback) needs a
``password_file``: the dashboard can retry, forget and pause, so it is never open to a
network without one. The file itself is read when the daemon starts (``cvsyncd.web``),
like the API key, and refused when others may read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cvsyncd.config.model import WebSettings
from cvsyncd.config.schema import Invalid, Reader, Setting, check_path, get_table, read_table
from cvsyncd.urls import is_loopback

DEFAULT_LISTEN = "127.0.0.1:8750"


def parse_listen(value: Any, reader: Reader | None = None) -> tuple[str, int]:
    """Return (host, port) of ``host:port`` or ``[v6 address]:port``; raise Invalid."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid("must be a text such as 127.0.0.1:8750 or [::1]:8750")
    text = value.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise Invalid(f"{text!r}: an IPv6 address goes in brackets, then :port")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise Invalid(f"{text!r} has no :port")
        if ":" in host:
            raise Invalid(f"{text!r}: write an IPv6 address in brackets, e.g. [{host}]:{port_text}")
    if not host or any(c.isspace() or c in "/?#@" for c in host):
        raise Invalid(f"{text!r} has no usable host")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise Invalid(f"{text!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


WEB_KEYS: Mapping[str, Setting] = {
    "listen": Setting(
        parse_listen,
        "host:port, such as 127.0.0.1:8750 or [::1]:8750",
        parse_listen(DEFAULT_LISTEN),
    ),
    "password_file": Setting(
        check_path,
        "the path of a file holding the dashboard's password, mode 0600",
        None,
    ),
}


def make_web(data: Mapping[str, Any], reader: Reader) -> WebSettings | None:
    """The ``[web]`` section's settings, or None without the section (or with problems)."""
    if "web" not in data:
        return None
    table = get_table(data, "web", reader)
    values = read_table(table, WEB_KEYS, "web", reader)
    if values.keys() != WEB_KEYS.keys():
        return None
    host, port = values["listen"]
    if not is_loopback(host) and values["password_file"] is None:
        reader.report(
            "web.password_file",
            f"the dashboard listens on {table.get('listen')}, which other "
            "machines can reach, so it needs a password",
            'add password_file = "/etc/cvsyncd/web_password" (a file only the daemon\'s '
            "user can read: chmod 600) to [web], or listen on 127.0.0.1",
        )
        return None
    return WebSettings(host, port, values["password_file"])
