"""The ``[alerts]`` section: where alerts go (Apprise URLs) and which events send one.

Without the section, or with no ``urls``, there are no alerts. A URL is checked here for
its shape only (``scheme://…``, no spaces): whether Apprise knows the scheme is checked
when the daemon starts and by ``cvsyncd check`` (Apprise is the optional extra
``cvsyncd[alerts]``, and commands that only read the state must not need it). A URL
usually holds a token; it is never shown whole, only its scheme (``ntfy://…``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from cvsyncd.config.model import ALERT_EVENTS, AlertSettings
from cvsyncd.config.schema import (
    Invalid,
    Reader,
    Setting,
    describe,
    get_table,
    read_table,
    show_value,
    strings,
)

URL_SHAPE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
DEFAULT_GROUP_SECONDS = 60.0


def _check_urls(value: Any, reader: Reader) -> tuple[str, ...]:
    urls: tuple[str, ...] = strings().check(value, reader)
    for position, url in enumerate(urls, 1):
        if not URL_SHAPE.fullmatch(url):
            raise Invalid(
                f"URL number {position} is not a URL such as ntfy://my-topic (it is not "
                "shown here: it may hold a token)",
                "Apprise URLs, e.g. ntfy://topic, discord://id/token, mailto://user:pw@host",
            )
    return urls


def _check_seconds(value: Any, reader: Reader) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(f"{describe(value)} is not a number")
    if not math.isfinite(value) or value < 0:
        raise Invalid(f"must be 0 or more, got {show_value(value)}")
    return float(value)


ALERT_KEYS: Mapping[str, Setting] = {
    "urls": Setting(
        _check_urls,
        "a list of Apprise URLs (ntfy://topic, discord://id/token, tgram://token/chat, "
        "pover://user@token, mailto://…, json://host/path …)",
        (),
    ),
    "events": strings(
        ALERT_EVENTS,
        valid="a list of: " + ", ".join(ALERT_EVENTS),
        allowed=ALERT_EVENTS,
    ),
    "group_seconds": Setting(
        lambda value, reader: _check_seconds(value, reader),
        "seconds (0 or more): alerts of one kind within this long make one message",
        DEFAULT_GROUP_SECONDS,
    ),
}


def make_alerts(data: Mapping[str, Any], reader: Reader) -> AlertSettings | None:
    """The ``[alerts]`` section's settings (defaults without the section); None if it has
    problems (they are reported)."""
    table = get_table(data, "alerts", reader)
    values = read_table(table, ALERT_KEYS, "alerts", reader)
    if values.keys() != ALERT_KEYS.keys():
        return None
    return AlertSettings(
        urls=values["urls"],
        events=tuple(dict.fromkeys(values["events"])),
        group_seconds=values["group_seconds"],
    )
