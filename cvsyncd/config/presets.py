"""The Cleanvoice edit-config vocabulary: which keys a preset may set, and to what.

The vocabulary is data: ``VOCABULARY`` maps every key the API accepts in
``input.config`` to an :class:`Option` (the kinds of value it takes, its allowed strings,
its bounds, its description). ``ALIASES`` names legacy spellings and ``REQUIREMENTS`` the
keys that only work together with another. To teach cvsyncd a new API key, add one line
to ``VOCABULARY`` (and a row to ``docs/config.md``).

:func:`validate_options` checks a table of options against all of this and returns the
problems; :func:`normalize_options` turns a valid table into exactly what the API wants.
The config file, and any other place that reads options (per-subfolder override files),
use these two so that the checks and the wording are the same everywhere.

The messages are worded with the helpers of :mod:`cvsyncd.config.schema` (:func:`suggest`,
:func:`show_value`, :func:`describe`, :func:`unknown_key`, :func:`key_path`), which
``loading.py`` and ``folders.py`` use too, so that all of cvsyncd's config messages read alike.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from cvsyncd.config.schema import (
    Reader,
    describe,
    get_table,
    key_path,
    show_value,
    suggest,
    unknown_key,
)
from cvsyncd.errors import Problem

Kind = Literal["bool", "number", "choice", "https_url", "id"]

#: The one preset key that is not an edit-config option: it goes beside ``config`` in the
#: create-edit body (``input.template_id``), naming a template saved in the dashboard.
TEMPLATE_KEY = "template_id"
#: A preset key for cvsyncd itself, never sent: how a video is sent (the folder key of the
#: same name is the default; see pipeline/videoupload.py).
VIDEO_UPLOAD_KEY = "video_upload"
LOCAL_KEYS = (VIDEO_UPLOAD_KEY,)


@dataclass(frozen=True)
class Option:
    """What one Cleanvoice config key accepts.

    ``kinds`` lists the accepted kinds of value: ``"bool"``; ``"number"`` (an integer or a
    float, never a boolean), bounded by ``at_most`` / ``below``; ``"choice"``, one of the
    strings in ``choices``; ``"https_url"``, an https URL string; ``"id"``, a whole
    number ≥ 1 (never a boolean).
    """

    kinds: tuple[Kind, ...]
    description: str
    default: str = "false"
    choices: tuple[str, ...] = ()
    at_most: float | None = None
    below: float | None = None

    @property
    def valid(self) -> str:
        """Return, in words, the values this option accepts."""
        parts = []
        if "bool" in self.kinds:
            parts.append("true or false")
        if "number" in self.kinds:
            if self.at_most is not None:
                parts.append(f"a number ≤ {show_value(self.at_most)}")
            elif self.below is not None:
                parts.append(f"a number < {show_value(self.below)}")
            else:
                parts.append("a number")
        if "choice" in self.kinds:
            parts.append("one of " + ", ".join(show_value(c) for c in self.choices))
        if "https_url" in self.kinds:
            parts.append('an https:// URL string, e.g. "https://bucket.example.com/out.mp3?…"')
        if "id" in self.kinds:
            parts.append("a whole number ≥ 1, e.g. 42")
        return ", or ".join(parts)


def flag(description: str, default: str = "false") -> Option:
    """Return the :class:`Option` of a plain true/false key."""
    return Option(("bool",), description, default)


VOCABULARY: Mapping[str, Option] = MappingProxyType(
    {
        "fillers": flag("remove filler sounds (um, uh, …)"),
        "long_silences": flag("shorten long silences"),
        "stutters": flag("remove stutters"),
        "mouth_sounds": flag("remove mouth sounds (clicks, smacks)"),
        "hesitations": flag("remove hesitations"),
        "muted": flag("mute what would be cut instead of cutting it (keeps the timing)"),
        "breath": Option(
            ("bool", "choice"),
            "breathing sounds: true mutes them, natural lowers them, legacy is the older "
            "algorithm (for audio that is already clean), muted is the same as true",
            choices=("natural", "legacy", "muted"),
        ),
        "remove_noise": flag("remove background noise", default="true"),
        "keep_music": flag("leave sections with music alone"),
        "normalize": flag("normalise loudness (advised with merge)"),
        "autoeq": flag("automatic EQ (legacy; studio_sound replaces it)"),
        "studio_sound": Option(
            ("bool", "choice"),
            'studio processing; "nightly" is the recommended version, true is deprecated',
            choices=("nightly",),
        ),
        "mute_lufs": Option(
            ("number",), "loudness (LUFS) that muted parts are brought down to", "-80", at_most=0
        ),
        "target_lufs": Option(
            ("number",), "loudness (LUFS) that normalize aims for", "-16", below=0
        ),
        "export_format": Option(
            ("choice",),
            "audio format of the cleaned file; auto keeps the input's format",
            '"auto"',
            # the docs and the JS SDK: only these; the Python SDK's type also lets "aac"
            # and "opus" through (docs/cleanvoice-api.md, "Where the sources disagree")
            choices=("auto", "mp3", "wav", "flac", "m4a"),
        ),
        "transcription": flag("transcribe the recording"),
        "summarize": flag("title, summary, chapters and key learnings (needs transcription)"),
        "social_content": flag("newsletter and social media posts (needs summarize)"),
        "export_timestamps": flag("marker files with the timestamps of every edit"),
        "merge": flag("multi-track: mix the tracks into one file"),
        "automix": flag("multi-track: automatic mixdown"),
        "video": flag("the input is a video; the result is the processed video"),
        "send_email": flag("Cleanvoice also e-mails the result to the account"),
        "trim": flag("trim silence at the start and the end"),
        "waveform_preview": flag("ask for a waveform preview"),
        "audio_for_edl": flag("audio for an edit decision list"),
        "signed_url": Option(("https_url",), "results are also PUT to this URL", "none (not sent)"),
        TEMPLATE_KEY: Option(
            ("id",),
            "a template saved in the Cleanvoice dashboard (sent as input.template_id)",
            "none (not sent)",
        ),
        VIDEO_UPLOAD_KEY: Option(
            ("choice",),
            "cvsyncd's own, never sent: a video goes whole (full), as its sound alone "
            "(audio), or as its sound alone when the preset keeps the timing (auto)",
            "the folder's video_upload",
            choices=("auto", "full", "audio"),
        ),
    }
)

#: Legacy spellings the API still accepts, and the key each one stands for.
ALIASES: Mapping[str, str] = MappingProxyType({"sound_studio": "studio_sound"})


@dataclass(frozen=True)
class Requirement:
    """``key = true`` only works together with ``needs = true``."""

    key: str
    needs: str


REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement("summarize", "transcription"),
    Requirement("social_content", "summarize"),
)


def validate_options(
    options: Mapping[str, Any],
    file: str,
    key_prefix: str,
    *,
    extra_keys: Collection[str] = (),
) -> list[Problem]:
    """Given a table of Cleanvoice options as the user wrote it, return its problems.

    Checks every key and value (:func:`validate_values`) and the rules between keys
    (:func:`validate_requirements`, on the table with aliases normalised). Keys are
    reported as ``key_prefix.key``. ``extra_keys`` are keys the caller handles itself
    (such as ``extends``): they are neither checked nor unknown.
    """
    problems = validate_values(options, file, key_prefix, extra_keys=extra_keys)
    if not problems:
        known = {k: v for k, v in options.items() if k not in extra_keys}
        problems += validate_requirements(normalize_options(known), file, key_prefix)
    return problems


def validate_values(
    options: Mapping[str, Any],
    file: str,
    key_prefix: str,
    *,
    extra_keys: Collection[str] = (),
) -> list[Problem]:
    """Given a table of options, return the problems of its keys and values one by one.

    Unknown keys, values of the wrong kind or out of range, and an alias set together
    with the key it stands for. The rules between keys are left to
    :func:`validate_requirements`, which must see the whole effective table.
    """
    problems = []
    for key, value in options.items():
        where = key_path(key_prefix, key)
        if key in extra_keys:
            continue
        name = ALIASES.get(key, key)
        option = VOCABULARY.get(name)
        if option is None:
            candidates = [*VOCABULARY, *ALIASES, *extra_keys]
            problems.append(unknown_key(file, where, key, candidates, list(VOCABULARY)))
            continue
        if name != key and name in options:
            problems.append(
                Problem(
                    file,
                    where,
                    f"`{key}` is the old name of `{name}`, and both are set",
                    f"keep only `{name}`",
                )
            )
            continue
        message = check_value(option, value)
        if message:
            problems.append(Problem(file, where, message, option.valid))
    return problems


def check_value(option: Option, value: Any) -> str:
    """Return what is wrong with ``value`` for ``option``, or "" if it is valid."""
    if isinstance(value, bool):
        return "" if "bool" in option.kinds else f"{describe(value)} is not accepted here"
    if isinstance(value, int | float) and "number" in option.kinds:
        if not math.isfinite(value):
            return f"must be a finite number, got {show_value(value)}"
        if option.at_most is not None and value > option.at_most:
            return f"must be at most {show_value(option.at_most)}, got {show_value(value)}"
        if option.below is not None and value >= option.below:
            return f"must be below {show_value(option.below)}, got {show_value(value)}"
        return ""
    if isinstance(value, str) and "choice" in option.kinds:
        if value in option.choices:
            return ""
        hint = suggest(value, option.choices)
        if not hint and "bool" in option.kinds and value.lower() in ("true", "false"):
            hint = f" (write {value.lower()} without quotes)"
        return f"{show_value(value)} is not one of the choices{hint}"
    if isinstance(value, int) and "id" in option.kinds:
        return "" if value >= 1 else f"must be a whole number ≥ 1, got {show_value(value)}"
    if isinstance(value, str) and "https_url" in option.kinds:
        parts = urlsplit(value)
        if parts.scheme == "https" and parts.hostname:
            return ""
        # A signed URL is a credential: never repeat it in a message.
        return "must be an https:// URL with a host (the value is not shown: it may be secret)"
    if isinstance(value, str) and "bool" in option.kinds and value.lower() in ("true", "false"):
        return f"{describe(value)} is not accepted here (write {value.lower()} without quotes)"
    return f"{describe(value)} is not accepted here"


def validate_requirements(options: Mapping[str, Any], file: str, key_prefix: str) -> list[Problem]:
    """Given an effective, normalised table of options, return the broken ``REQUIREMENTS``.

    The message names every key still missing down the chain, so that one fix is enough
    (``social_content`` alone needs both ``summarize`` and ``transcription``).
    """
    needs = {rule.key: rule.needs for rule in REQUIREMENTS}
    problems = []
    for rule in REQUIREMENTS:
        if options.get(rule.key) is not True or options.get(rule.needs) is True:
            continue
        missing: list[str] = []
        key: str | None = rule.needs
        while key is not None and options.get(key) is not True and key not in missing:
            missing.append(key)
            key = needs.get(key)
        wanted = " and ".join(f"`{k} = true`" for k in missing)
        verb = "set {} in" if any(k in options for k in missing) else "add {} to"
        problems.append(
            Problem(
                file,
                key_path(key_prefix, rule.key),
                f"`{rule.key} = true` needs {wanted}",
                f"{verb.format(wanted)} this preset, or remove `{rule.key}`",
            )
        )
    return problems


def normalize_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Given a valid table of options, return it as the API wants it: aliases renamed."""
    return {ALIASES.get(key, key): value for key, value in options.items()}


@dataclass(frozen=True)
class PresetTable:
    """One preset as written: where, its own valid options (normalised), what it extends."""

    where: str
    options: Mapping[str, Any]
    extends: str | None
    ok: bool


class PresetBook:
    """The named presets of one file, and their effective options once resolved."""

    def __init__(self, data: Mapping[str, Any], reader: Reader):
        self.reader = reader
        section = get_table(data, "presets", reader)
        self.names = [name for name, table in section.items() if isinstance(table, dict)]
        self.tables: dict[str, PresetTable] = {}
        self.resolved: dict[str, dict[str, Any] | None] = {}
        for name, table in section.items():
            where = key_path("presets", name)
            if isinstance(table, dict):
                self.tables[name] = self.read(table, where)
                continue
            hint = ""
            if name in VOCABULARY or name in ALIASES:
                hint = f"; `{name}` is an option: put it in a named preset such as [presets.talk]"
            reader.report(where, f"must be a table of Cleanvoice options{hint}", f"[{where}]")
        for name, preset in self.tables.items():
            options = self.resolve(name)
            if options is not None:
                reader.problems += validate_requirements(options, reader.file, preset.where)

    def read(self, table: Mapping[str, Any], where: str) -> PresetTable:
        """Given one preset table (named or inline), check its own keys and ``extends``."""
        found = validate_values(table, self.reader.file, where, extra_keys=("extends",))
        extends = table.get("extends")
        if extends is not None and (not isinstance(extends, str) or extends not in self.names):
            if isinstance(extends, str):
                message = f"no preset named {show_value(extends)}{suggest(extends, self.names)}"
            else:
                message = f"{describe(extends)} is not a preset name"
            found.append(Problem(self.reader.file, f"{where}.extends", message, self.valid()))
        self.reader.problems += found
        options = normalize_options({k: v for k, v in table.items() if k != "extends"})
        return PresetTable(where, options, extends if isinstance(extends, str) else None, not found)

    def valid(self) -> str:
        """Return, in words, the preset names that may be used."""
        if not self.names:
            return "no presets are defined in this file; add a [presets.NAME] table"
        return "one of the presets in this file: " + ", ".join(show_value(n) for n in self.names)

    def resolve(self, name: str, trail: tuple[str, ...] = ()) -> dict[str, Any] | None:
        """Return the effective options of the named preset, or None if it, or a preset it
        extends, is broken. A cycle is reported once, at the ``extends`` that closes it."""
        if name in trail:
            cycle = " → ".join((*trail[trail.index(name) :], name))
            self.reader.report(
                f"{self.tables[trail[-1]].where}.extends",
                f"presets extend each other in a circle: {cycle}",
                "a chain of `extends` that ends at a preset without one",
            )
            return None
        if name not in self.resolved:
            self.resolved[name] = self.merge(self.tables[name], (*trail, name))
        return self.resolved[name]

    def merge(self, table: PresetTable, trail: tuple[str, ...] = ()) -> dict[str, Any] | None:
        """Return ``table``'s options on top of those of the preset it extends."""
        if not table.ok:
            return None
        base = {} if table.extends is None else self.resolve(table.extends, trail)
        return None if base is None else {**base, **table.options}

    def effective(self) -> dict[str, dict[str, Any]]:
        return {name: options for name, options in self.resolved.items() if options is not None}


#: The edits that remove stretches of the recording, unless ``muted = true`` asks for them
#: to be silenced in place ("Mute specified segments instead of cutting them", the docs).
CUTS_UNLESS_MUTED = ("fillers", "long_silences", "stutters", "mouth_sounds", "hesitations")


def timing_changes(options: Mapping[str, Any]) -> list[str]:
    """Given an edit config, return why the cleaned recording may be shorter than the
    input (one phrase per reason); an empty list means it keeps the input's timing.

    From the API docs and the official SDK's ``ProcessingConfig``: the five edits above
    cut unless ``muted`` is true; ``breath`` true/``"muted"`` mutes and ``"natural"``
    lowers the volume (both keep timing), ``"legacy"`` is an older algorithm the docs do
    not describe (taken as a cut unless muted); ``trim`` cuts the start and the end;
    noise removal, ``studio_sound``, ``normalize``, ``autoeq``, loudness targets, the
    export format and the text outputs change the sound, not its length. A
    ``template_id`` and ``audio_for_edl`` stand for settings not known here, so they are
    not taken to keep timing.
    """
    muted = options.get("muted") is True
    reasons = [
        f"{key} = true cuts (muted = true would silence instead)"
        for key in CUTS_UNLESS_MUTED
        if options.get(key) is True and not muted
    ]
    if options.get("breath") == "legacy" and not muted:
        reasons.append('breath = "legacy" may cut breaths (muted = true would silence them)')
    if options.get("trim") is True:
        reasons.append("trim = true cuts the start and the end")
    if options.get("audio_for_edl") is True:
        reasons.append("audio_for_edl = true is not documented; its timing is not known")
    if options.get(TEMPLATE_KEY) is not None:
        reasons.append("template_id: the template's settings are not known here")
    return reasons
