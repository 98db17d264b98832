"""Reading and validating the cvsyncd config file (TOML).

The flow: :func:`load_config` reads a file and hands its tables to :func:`parse_config`,
which is pure. It checks everything, collects *every* problem in a
:class:`~cvsyncd.config.schema.Reader`, and either raises one
:class:`~cvsyncd.errors.ConfigError` holding all of them or returns a frozen
:class:`~cvsyncd.config.model.Config`. Nothing here looks at the folders on disk;
``cvsyncd check`` and the daemon do that at run time. The API key is found only when it is
needed, by :func:`cvsyncd.config.apikey.read_api_key`.

Each section is described by a small schema, ``{key: Setting(check, valid, default)}``
(``CLEANVOICE_KEYS``, ``DAEMON_KEYS`` here, ``FOLDER_KEYS`` in ``folders.py``), checked by
the machinery in :mod:`cvsyncd.config.schema`: a new key is one line there and one field
in the matching dataclass of ``model.py``. The Cleanvoice options inside presets are
checked by :mod:`cvsyncd.config.presets`, where preset inheritance (``extends``) is
resolved too.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cvsyncd.config.alerts import make_alerts
from cvsyncd.config.apikey import API_KEY_VARIABLE, CREDENTIAL_NAME
from cvsyncd.config.folders import make_folders
from cvsyncd.config.model import (
    DEFAULT_BASE_URL,
    BudgetSettings,
    CleanvoiceSettings,
    Config,
    DaemonSettings,
)
from cvsyncd.config.presets import PresetBook
from cvsyncd.config.schema import (
    Invalid,
    Reader,
    Setting,
    boolean,
    choice,
    describe,
    get_table,
    home_dir,
    hours,
    integer,
    key_path,
    number,
    path,
    read_table,
    show_value,
    unknown_key,
)
from cvsyncd.config.store import make_store
from cvsyncd.config.web import make_web
from cvsyncd.errors import ConfigError, Problem
from cvsyncd.urls import is_loopback

# -- checks for values of this file's own kinds ---------------------------------------------


def check_base_url(value: Any, reader: Reader) -> str:
    """Return the API base URL without a trailing slash; http only to a loopback host."""
    if not isinstance(value, str):
        raise Invalid(f"{describe(value)} is not a URL")
    parts = urlsplit(value)
    if parts.username is not None or parts.password is not None:
        raise Invalid("must not contain a user name or password")  # so it is not repeated
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise Invalid(f"{show_value(value)} has an invalid port number") from None
    fixed = show_value("https://" + value.split("://", 1)[-1].lstrip("/"))
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise Invalid(f"{show_value(value)} is not an http(s) URL with a host; write {fixed}")
    if parts.query or parts.fragment:
        raise Invalid(f"{show_value(value)} must not have a ?query or #fragment")
    if parts.scheme.lower() == "http" and not is_loopback(parts.hostname):
        raise Invalid(
            f"http:// would send the API key unencrypted to {parts.hostname}; it is only for a "
            f"local emulator (127.0.0.1, localhost, ::1). Write {fixed} instead"
        )
    return value.rstrip("/")


# -- the schema of each section -------------------------------------------------------------

CLEANVOICE_KEYS: Mapping[str, Setting] = {
    "base_url": Setting(
        check_base_url, f"an https:// URL such as {DEFAULT_BASE_URL}", DEFAULT_BASE_URL
    ),
    "api_key_file": path(None, "the path of a file holding the API key, mode 0600"),
    "submit_requests_per_minute": integer(30, at_least=1),
    "status_requests_per_minute": integer(300, at_least=1),
    "expected_processing_ratio": number(0.125, above=0),
    "retention_seconds": number(7 * 24 * 3600.0, above=0),
    "max_answer_mb": number(32.0, above=0),
    "max_download_gb": number(50.0, above=0),
    "request_deadline_seconds": number(120.0, above=0),
}

DAEMON_KEYS: Mapping[str, Setting] = {
    "state_dir": path(None),
    "settle_seconds": number(5.0, above=0),
    "poll_initial_seconds": number(30.0, above=0),
    "poll_max_seconds": number(120.0, above=0),
    "poll_min_seconds": number(5.0, above=0),
    "max_concurrent_uploads": integer(2, at_least=1),
    "max_active_edits": integer(4, at_least=1),
    "log_level": choice("info", "debug", "info", "warning", "error", fold_case=True),
    "resubmit_ambiguous": boolean(False),
    "stop_grace_seconds": number(60.0, above=0),
    "retry_initial_seconds": number(5.0, above=0),
    "retry_max_seconds": number(900.0, above=0),
}

BUDGET_KEYS: Mapping[str, Setting] = {
    "backlog_hours": hours(2.0, zero=True),
    "hours_per_day": hours(None),
    "hours_per_month": hours(None),
    "unknown_duration_hours": hours(1.0, zero=True),
}

TOP_KEYS = ("cleanvoice", "daemon", "budget", "presets", "folders", "web", "alerts", "store")


# -- sections -------------------------------------------------------------------------------


def default_state_dir(env: Mapping[str, str]) -> Path:
    """Return where the state lives when ``daemon.state_dir`` is not given.

    ``$STATE_DIRECTORY`` (set by systemd's ``StateDirectory=``; its first entry if there are
    several), else ``$XDG_STATE_HOME/cvsyncd``, else ``~/.local/state/cvsyncd``.
    """
    systemd = env.get("STATE_DIRECTORY", "").split(":")[0]
    if systemd:
        return Path(os.path.abspath(systemd))
    xdg = env.get("XDG_STATE_HOME", "")
    if os.path.isabs(xdg):  # the XDG spec says to ignore a relative path
        return Path(xdg) / "cvsyncd"
    return home_dir(env) / ".local" / "state" / "cvsyncd"


def make_cleanvoice(data: Mapping[str, Any], reader: Reader) -> CleanvoiceSettings | None:
    table = dict(get_table(data, "cleanvoice", reader))
    if table.pop("api_key", None) is not None:  # the value is not repeated
        reader.report(
            "cleanvoice.api_key",
            "the API key itself does not belong in the config file",
            f"api_key_file = a file of mode 0600 holding the key, the systemd credential "
            f"{CREDENTIAL_NAME}, or ${API_KEY_VARIABLE}",
        )
    values = read_table(table, CLEANVOICE_KEYS, "cleanvoice", reader)
    return CleanvoiceSettings(**values) if values.keys() == CLEANVOICE_KEYS.keys() else None


# Rules between daemon keys: (key, relation, other). The rule is reported at ``key``, or
# at ``other`` if only that one was written in the file.
DAEMON_ORDER = (
    ("poll_max_seconds", "≥", "poll_initial_seconds"),
    ("poll_min_seconds", "≤", "poll_max_seconds"),
    ("retry_max_seconds", "≥", "retry_initial_seconds"),
)
FLIPPED = {"≥": "≤", "≤": "≥"}


def make_daemon(data: Mapping[str, Any], reader: Reader) -> DaemonSettings | None:
    table = get_table(data, "daemon", reader)
    values = read_table(table, DAEMON_KEYS, "daemon", reader)
    if values.get("state_dir", "") is None:
        values["state_dir"] = default_state_dir(reader.env)
    for key, relation, other in DAEMON_ORDER:
        if key not in values or other not in values:
            continue
        if key not in table and other in table:
            key, relation, other = other, FLIPPED[relation], key
        value, limit = values[key], values[other]
        if (value < limit) if relation == "≥" else (value > limit):
            reader.report(
                f"daemon.{key}",
                f"must be {relation} {other} ({show_value(limit)}), got {show_value(value)}",
                f"a number > 0 and {relation} {other}",
            )
    return DaemonSettings(**values) if values.keys() == DAEMON_KEYS.keys() else None


def make_budget(data: Mapping[str, Any], reader: Reader) -> BudgetSettings | None:
    table = get_table(data, "budget", reader)
    values = read_table(table, BUDGET_KEYS, "budget", reader)
    day, month = values.get("hours_per_day"), values.get("hours_per_month")
    if day is not None and month is not None and day > month:
        reader.report(
            "budget.hours_per_day",
            f"a day may not spend more than the month ({show_value(day)} h > "
            f"hours_per_month = {show_value(month)} h)",
            "a number of hours ≤ hours_per_month",
        )
    return BudgetSettings(**values) if values.keys() == BUDGET_KEYS.keys() else None


# -- the file as a whole --------------------------------------------------------------------


def parse_config(
    data: Mapping[str, Any], source: Path, env: Mapping[str, str] | None = None
) -> Config:
    """Given the tables of a config file read from ``source``, return its Config.

    Relative paths are taken from the folder of ``source``; defaults may come from ``env``
    (``os.environ`` if None). Nothing is read from disk. Raise ConfigError holding every
    problem if there are any.
    """
    absolute = Path(os.path.abspath(source))
    reader = Reader(str(source), absolute.parent, os.environ if env is None else env)
    for key in data:
        if key not in TOP_KEYS:
            reader.problems.append(
                unknown_key(reader.file, key_path("", key), key, TOP_KEYS, TOP_KEYS)
            )
    cleanvoice = make_cleanvoice(data, reader)
    daemon = make_daemon(data, reader)
    budget = make_budget(data, reader)
    book = PresetBook(data, reader)
    folders = make_folders(data, book)
    web = make_web(data, reader)
    alerts = make_alerts(data, reader)
    store = make_store(data, reader)
    if (
        reader.problems
        or cleanvoice is None
        or daemon is None
        or budget is None
        or alerts is None
        or not folders
    ):
        raise ConfigError(reader.problems)
    return Config(
        absolute, cleanvoice, daemon, book.effective(), folders, budget, web, alerts, store
    )


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read the config file at ``path`` and return its Config.

    Raise ConfigError if the file cannot be read, is not TOML, or has any problem.
    """
    file = os.fspath(path)
    try:
        with open(file, "rb") as stream:
            data = tomllib.load(stream)
    except OSError as error:
        problem = Problem(file, "", f"cannot read the config file: {error.strerror}")
        raise ConfigError([problem]) from None
    except UnicodeDecodeError:
        raise ConfigError([Problem(file, "", "is not UTF-8 text", "TOML in UTF-8")]) from None
    except tomllib.TOMLDecodeError as error:
        found = re.fullmatch(r"(.*) \((at .*)\)", str(error))
        what, where = found.groups() if found else (str(error), "")
        message = f"invalid TOML {where}: {what}" if where else f"invalid TOML: {what}"
        raise ConfigError([Problem(file, "", message, "TOML, see https://toml.io")]) from None
    return parse_config(data, Path(file), env)
