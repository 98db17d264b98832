"""The one rule for what counts as this machine: loopback hosts and URLs.

Plain http is allowed only to this machine (the emulator, a test server); the config
checks base URLs and webhook URLs with it, and the client checks every transfer URL and
every redirect hop with it. Any address of 127.0.0.0/8, ``::1`` (in brackets or not,
IPv4-mapped too) and ``localhost`` are loopback.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, with or without brackets) is this machine."""
    host = host.strip("[]").split("%", 1)[0]
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` points at this machine."""
    try:
        return is_loopback(urlsplit(url).hostname or "")
    except ValueError:
        return False
