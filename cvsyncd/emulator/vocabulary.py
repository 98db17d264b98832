"""The body of ``POST /v2/edits``, validated as strictly as the docs and the SDKs allow.

The emulator keeps its own copy of the config vocabulary on purpose: it is the yardstick the
client code is measured against, so it must not share that code's mistakes. Every problem
is reported at once, each naming the field (``input.config.breath``) and what would be valid.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# the docs' table and the JS SDK's type (the Python SDK's type also has "aac" and "opus")
EXPORT_FORMATS = ("auto", "mp3", "wav", "flac", "m4a")

# A check returns None when the value is fine, else what a valid value looks like.
Check = Callable[[Any], str | None]


def _is_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _bool_or(*words: str) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or value in words:
            return None
        return "true, false, " + ", ".join(f'"{word}"' for word in words)

    return check


def _one_of(*words: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in words else "one of " + ", ".join(f'"{w}"' for w in words)

    return check


def _number_at_most_zero(value: Any) -> str | None:
    return None if _is_number(value) and value <= 0 else "a number ≤ 0"


def _number_below_zero(value: Any) -> str | None:
    return None if _is_number(value) and value < 0 else "a number < 0"


def _is_string(value: Any) -> str | None:
    return None if isinstance(value, str) else "a string"


_BOOL_KEYS = (
    "fillers",
    "long_silences",
    "stutters",
    "mouth_sounds",
    "hesitations",
    "muted",
    "remove_noise",
    "keep_music",
    "normalize",
    "autoeq",
    "transcription",
    "summarize",
    "social_content",
    "export_timestamps",
    "merge",
    "automix",
    "video",
    "send_email",
    "trim",
    "waveform_preview",
    "audio_for_edl",
)

CONFIG_CHECKS: Mapping[str, Check] = {
    **dict.fromkeys(_BOOL_KEYS, _is_bool),
    "breath": _bool_or("natural", "legacy", "muted"),
    "studio_sound": _bool_or("nightly"),
    "sound_studio": _bool_or("nightly"),  # legacy alias of studio_sound
    "mute_lufs": _number_at_most_zero,
    "target_lufs": _number_below_zero,
    "export_format": _one_of(*EXPORT_FORMATS),
    "signed_url": _is_string,
}

# (key, the key it needs): a feature that builds on another one's output.
REQUIRES = (("summarize", "transcription"), ("social_content", "summarize"))


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request body: the dotted field and what is wrong."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class EditRequest:
    """A create-edit body that passed validation."""

    files: tuple[str, ...]
    config: Mapping[str, Any]
    upload_type: str | None
    template_id: int | None


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _unknown_key(field: str, key: str, known: list[str]) -> Problem:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f' (did you mean "{close[0]}"?)' if close else ""
    return Problem(f"{field}.{key}", f"unknown key{hint}")


def validate_config(config: Any) -> list[Problem]:
    """Given ``input.config``, return every problem with its keys, values and key pairs."""
    if not isinstance(config, dict):
        return [Problem("input.config", "must be an object")]
    problems: list[Problem] = []
    known = sorted(CONFIG_CHECKS)
    for key, value in config.items():
        check = CONFIG_CHECKS.get(key)
        if check is None:
            problems.append(_unknown_key("input.config", key, known))
            continue
        valid = check(value)
        if valid is not None:
            problems.append(
                Problem(f"input.config.{key}", f"must be {valid}, not {_describe(value)}")
            )
    if "studio_sound" in config and "sound_studio" in config:
        problems.append(
            Problem("input.config.sound_studio", "legacy alias of studio_sound: give only one")
        )
    for key, needed in REQUIRES:
        if config.get(key) is True and config.get(needed) is not True:
            problems.append(Problem(f"input.config.{key}", f"requires {needed} to be true"))
    return problems


def _file_problem(index: int, value: Any) -> Problem | None:
    field = f"input.files[{index}]"
    if not isinstance(value, str):
        return Problem(field, "must be a URL string")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return Problem(field, "must be an http(s) URL")
    return None


def validate_files(files: Any) -> list[Problem]:
    """Given ``input.files``, return its problems: a non-empty list of http(s) URLs."""
    if not isinstance(files, list) or not files:
        return [Problem("input.files", "must be a non-empty list of URLs")]
    return [p for i, f in enumerate(files) if (p := _file_problem(i, f)) is not None]


def _optional_problems(data: Mapping[str, Any]) -> list[Problem]:
    problems = []
    upload_type = data.get("upload_type")
    if upload_type is not None and not isinstance(upload_type, str):
        problems.append(Problem("input.upload_type", "must be a string"))
    template_id = data.get("template_id")
    if template_id is not None and (
        not isinstance(template_id, int) or isinstance(template_id, bool)
    ):
        problems.append(Problem("input.template_id", "must be an integer"))
    return problems


_INPUT_KEYS = ("files", "config", "upload_type", "template_id")


def parse_edit_request(body: Any) -> EditRequest | list[Problem]:
    """Given the decoded JSON body, return the request or every problem found in it."""
    if not isinstance(body, dict):
        return [Problem("body", "must be a JSON object")]
    problems = [_unknown_key("body", k, ["input"]) for k in body if k != "input"]
    data = body.get("input")
    if not isinstance(data, dict):
        return [*problems, Problem("input", "must be an object with files and config")]
    problems += [_unknown_key("input", k, list(_INPUT_KEYS)) for k in data if k not in _INPUT_KEYS]
    problems += validate_files(data.get("files"))
    if "config" not in data:
        problems.append(Problem("input.config", "is required (an object, may be empty)"))
    else:
        problems += validate_config(data["config"])
    problems += _optional_problems(data)
    if problems:
        return problems
    return EditRequest(
        files=tuple(data["files"]),
        config=dict(data["config"]),
        upload_type=data.get("upload_type"),
        template_id=data.get("template_id"),
    )
