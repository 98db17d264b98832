"""Per-subfolder presets: ``.cvsyncd.toml`` files inside an inbox.

A ``.cvsyncd.toml`` in any subfolder of an inbox changes the Cleanvoice options for that
subtree::

    preset = "interview"     # optional: start from this preset of the main config
    transcription = true     # optional: Cleanvoice options on top, named as in a preset

The files are applied from the inbox down to the recording's own folder, so the nearest
one wins, key by key, on top of the folder's preset. They are checked with the same
vocabulary and messages as the main config; a broken one holds back only its subtree.
"""

from __future__ import annotations

import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

from cvsyncd.config import Config, Folder, presets
from cvsyncd.config.schema import show_value, suggest
from cvsyncd.errors import ConfigError, Problem

OVERRIDE_NAME = ".cvsyncd.toml"  # in any subfolder of an inbox


def override_files(folder: Folder, rel_dir: PurePosixPath) -> list[Path]:
    """The ``.cvsyncd.toml`` files that apply to recordings in ``rel_dir``, outermost first."""
    places = [folder.inbox]
    for part in rel_dir.parts:
        places.append(places[-1] / part)
    return [p / OVERRIDE_NAME for p in places if (p / OVERRIDE_NAME).is_file()]


def effective_options(config: Config, folder: Folder, rel_dir: PurePosixPath) -> dict[str, Any]:
    """The edit config for recordings in ``rel_dir``; ConfigError names a broken file."""
    options = dict(folder.options)
    applied: list[str] = []
    for path in override_files(folder, rel_dir):
        preset, overrides = read_override(config, path)
        if preset is not None:
            options = dict(config.presets[preset])
        options.update(overrides)
        applied.append(str(path))
    if applied:
        problems = presets.validate_requirements(options, applied[-1], "")
        if problems:
            raise ConfigError(problems)
    return options


def read_override(config: Config, path: Path) -> tuple[str | None, dict[str, Any]]:
    """Return (preset name or None, normalised options) of one override file."""
    file = str(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Problem(file, "", f"invalid TOML: {exc}")]) from None
    except OSError as exc:
        raise ConfigError([Problem(file, "", f"cannot read it: {exc.strerror}")]) from None
    preset = data.pop("preset", None)
    problems: list[Problem] = []
    if preset is not None and (not isinstance(preset, str) or preset not in config.presets):
        names = ", ".join(show_value(n) for n in config.presets) or "none are defined"
        problems.append(
            Problem(
                file,
                "preset",
                f"no preset named {show_value(preset)}{suggest(str(preset), config.presets)}",
                f"a preset of {config.path}: {names}",
            )
        )
    problems += presets.validate_values(data, file, "")
    if problems:
        raise ConfigError(problems)
    return preset, presets.normalize_options(data)
