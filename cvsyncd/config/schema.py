"""The machinery that checks a config file's tables and words its problems.

A section is described by a schema, ``{key: Setting(check, valid, default)}``, built from
the check builders here (:func:`number`, :func:`integer`, :func:`boolean`, :func:`choice`,
:func:`text`, :func:`path`, :func:`hours`). :func:`read_table` checks a table against its schema and
collects every problem in a :class:`Reader` rather than stopping at the first one; a check
rejects a value by raising :class:`Invalid`.

The small helpers :func:`suggest`, :func:`show_value`, :func:`describe`,
:func:`unknown_key` and :func:`key_path` word every config message, in ``loading.py``,
``folders.py`` and ``presets.py`` alike, so that all of cvsyncd's config messages read the same.

Nothing here knows which sections or keys cvsyncd has: that is :mod:`cvsyncd.config`.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvsyncd.errors import Problem

# -- a reader that collects problems, and the schema of one key -----------------------------


@dataclass
class Reader:
    """Where the file is, the environment, and the problems found so far."""

    file: str
    base_dir: Path
    env: Mapping[str, str]
    problems: list[Problem] = field(default_factory=list)

    def report(self, key: str, message: str, valid: str = "") -> None:
        self.problems.append(Problem(self.file, key, message, valid))


class Invalid(Exception):
    """A value is not acceptable: the message says why, ``valid`` (if given) what would be."""

    def __init__(self, message: str, valid: str = ""):
        super().__init__(message)
        self.valid = valid


Check = Callable[[Any, Reader], Any]  # returns the value to keep, or raises Invalid
REQUIRED: Any = object()


@dataclass(frozen=True)
class Setting:
    """One key of a section: its check, what is valid (in words), and its default.

    ``default`` is ``REQUIRED`` when the key must be given, and ``None`` when it is worked
    out from other values (``done_dir`` from ``inbox``, ``state_dir`` from the environment).
    """

    check: Check
    valid: str
    default: Any = REQUIRED


# -- checks for single values ---------------------------------------------------------------


def number(default: float, *, above: float) -> Setting:
    def check(value: Any, reader: Reader) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Invalid(f"{describe(value)} is not a number")
        if not math.isfinite(value) or value <= above:
            raise Invalid(f"must be greater than {show_value(above)}, got {show_value(value)}")
        return float(value)

    return Setting(check, f"a number > {show_value(above)}", default)


def hours(default: float | None, *, zero: bool = False) -> Setting:
    """Hours of audio: a number > 0 (or ≥ 0 with ``zero``); None as the default means the
    key may be left out (no limit)."""

    def check(value: Any, reader: Reader) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Invalid(f"{describe(value)} is not a number of hours")
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
            least = "0 or more" if zero else "more than 0"
            raise Invalid(f"must be {least} hours, got {show_value(value)}")
        return float(value)

    least = "≥ 0" if zero else "> 0"
    valid = f"a number of hours {least}, e.g. 1.5"
    if default is None:
        valid += " (leave the key out for no cap)"
    return Setting(check, valid, default)


def integer(default: int, *, at_least: int) -> Setting:
    def check(value: Any, reader: Reader) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"{describe(value)} is not a whole number")
        if value < at_least:
            raise Invalid(f"must be at least {at_least}, got {value}")
        return value

    return Setting(check, f"a whole number ≥ {at_least}", default)


def boolean(default: bool) -> Setting:
    def check(value: Any, reader: Reader) -> bool:
        if not isinstance(value, bool):
            raise Invalid(f"{describe(value)} is not true or false")
        return value

    return Setting(check, "true or false", default)


def choice(default: str, *choices: str, fold_case: bool = False) -> Setting:
    def check(value: Any, reader: Reader) -> str:
        if not isinstance(value, str):
            raise Invalid(f"{describe(value)} is not one of the choices")
        if (value.lower() if fold_case else value) not in choices:
            raise Invalid(f"{show_value(value)} is not one of the choices{suggest(value, choices)}")
        return value.lower() if fold_case else value

    return Setting(check, ", ".join(show_value(c) for c in choices), default)


def text(default: Any = REQUIRED) -> Setting:
    def check(value: Any, reader: Reader) -> str:
        if not isinstance(value, str) or not value.strip():
            raise Invalid(f"{describe(value)} is not a non-empty string")
        return value

    return Setting(check, "a non-empty string", default)


def strings(
    default: tuple[str, ...] = (),
    *,
    valid: str = "a list of strings",
    allowed: tuple[str, ...] = (),
    normalize: Any = None,
) -> Setting:
    """A list of non-empty strings (optionally from ``allowed``), kept as a tuple."""

    def check(value: Any, reader: Reader) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise Invalid(f"{describe(value)} is not a list of non-empty strings")
        items = tuple(normalize(v) if normalize else v for v in value)
        for item in items:
            if allowed and item not in allowed:
                raise Invalid(
                    f"{show_value(item)} is not one of the choices{suggest(item, allowed)}"
                )
        return items

    return Setting(check, valid, default)


def file_mode(default: int) -> Setting:
    """Permission bits, written as 0o640 (a TOML integer) or "0640" (a string)."""

    def check(value: Any, reader: Reader) -> int:
        if isinstance(value, str) and value.isdigit():
            try:
                value = int(value, 8)
            except ValueError:
                raise Invalid(f"{show_value(value)} is not an octal number") from None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o777:
            raise Invalid(f"{describe(value)} is not a file mode")
        return value

    return Setting(check, 'permission bits, e.g. 0o640 or "0640"', default)


def optional_text(valid: str) -> Setting:
    def check(value: Any, reader: Reader) -> str:
        if not isinstance(value, str | int) or isinstance(value, bool) or value == "":
            raise Invalid(f"{describe(value)} is not a name")
        return str(value)

    return Setting(check, valid, None)


def path(default: Any = REQUIRED, valid: str = "a folder path") -> Setting:
    return Setting(check_path, f"{valid}; ~ and paths relative to the config file work", default)


def check_path(value: Any, reader: Reader) -> Path:
    """Return ``value`` as an absolute, normalised path: ``~`` expanded, a relative path
    taken from the config file's folder. Symlinks are left alone."""
    if not isinstance(value, str) or not value:
        raise Invalid(f"{describe(value)} is not a path")
    if "\0" in value:
        raise Invalid("contains a NUL character")
    if value == "~" or value.startswith("~/"):
        value = str(home_dir(reader.env)) + value[1:]
    elif value.startswith("~"):
        value = os.path.expanduser(value)
        if value.startswith("~"):
            raise Invalid(f"{show_value(value)}: there is no such user to expand ~ for")
    return Path(os.path.normpath(reader.base_dir / value))


def home_dir(env: Mapping[str, str]) -> Path:
    """Return the user's home folder: ``$HOME`` if set, else the password database's."""
    return Path(env.get("HOME") or os.path.expanduser("~"))


# -- tables ---------------------------------------------------------------------------------


def read_table(
    table: Mapping[str, Any], schema: Mapping[str, Setting], prefix: str, reader: Reader
) -> dict[str, Any]:
    """Given a TOML table and its schema, return its valid values, defaults filled in.

    Report every problem. A key with a problem is left out of the result, so that checks
    between keys can still run on the others.
    """
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in schema:
            reader.problems.append(
                unknown_key(reader.file, key_path(prefix, key), key, schema, schema)
            )
            continue
        try:
            values[key] = schema[key].check(value, reader)
        except Invalid as invalid:
            reader.report(key_path(prefix, key), str(invalid), invalid.valid or schema[key].valid)
    for key, setting in schema.items():
        if key in table:
            continue
        if setting.default is REQUIRED:
            reader.report(key_path(prefix, key), "missing", setting.valid)
        else:
            values[key] = setting.default
    return values


def get_table(data: Mapping[str, Any], key: str, reader: Reader) -> Mapping[str, Any]:
    """Return the section ``data[key]``: an empty table if absent, reported if not a table."""
    value = data.get(key, {})
    if isinstance(value, dict):
        return value
    reader.report(key, f"must be a table, not {describe(value)}", f"a [{key}] section")
    return {}


# -- wording shared by every config message -------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def key_path(prefix: str, key: str) -> str:
    """Return the dotted TOML path of ``key`` under ``prefix``, quoting it if TOML must."""
    part = key if _BARE_KEY.fullmatch(key) else '"' + key.replace('"', '\\"') + '"'
    return f"{prefix}.{part}" if prefix else part


def suggest(word: str, candidates: Iterable[str], quote: str = '"') -> str:
    """Return " (did you mean "x"?)" for the closest candidate, or "" if none is close."""
    candidates = list(candidates)
    matches = difflib.get_close_matches(word, candidates, n=1)
    if not matches:
        lowered = {c.lower(): c for c in candidates}
        matches = [lowered[word.lower()]] if word.lower() in lowered else []
    if not matches:
        return ""
    shown = f"`{matches[0]}`" if quote == "`" else show_value(matches[0])
    return f" (did you mean {shown}?)"


def unknown_key(
    file: str, where: str, key: str, candidates: Iterable[str], valid: Iterable[str]
) -> Problem:
    """Return the problem for an unknown ``key``, with a "did you mean" and the valid keys."""
    return Problem(
        file, where, f"unknown key{suggest(key, candidates, quote='`')}", ", ".join(valid)
    )


def show_value(value: Any) -> str:
    """Return ``value`` as it would be written in TOML, shortened if long."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        short = value if len(value) <= 60 else value[:57] + "…"
        return '"' + short.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return describe(value)


def describe(value: Any) -> str:
    """Return ``value`` with its TOML kind, for messages: 'the string "yes"', "a table"."""
    if isinstance(value, bool):
        return f"the boolean {show_value(value)}"
    if isinstance(value, int):
        return f"the integer {show_value(value)}"
    if isinstance(value, float):
        return f"the number {show_value(value)}"
    if isinstance(value, str):
        return f"the string {show_value(value)}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"the date/time {value}"
