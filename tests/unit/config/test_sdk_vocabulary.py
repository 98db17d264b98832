"""cvsyncd's option vocabulary, value by value, against the official Python SDK's own
validation (``cleanvoice-sdk``: its pydantic ``ProcessingConfig`` and ``validate_config``),
and against the emulator's copy, which must come from the docs and the SDK.

Both directions are checked: every value cvsyncd accepts must pass the SDK (else the
service would see something no official client sends), and every value the SDK lets
through must pass cvsyncd, except the few where the sources disagree and cvsyncd follows
the docs on purpose; those are listed here and in docs/cleanvoice-api.md.
"""

from __future__ import annotations

import types as pytypes
import typing
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cvsyncd.config import presets
from cvsyncd.emulator import vocabulary as emulator_vocabulary
from tests.conftest import REPO

sdk_types = pytest.importorskip("cleanvoice.types")
sdk_files = pytest.importorskip("cleanvoice.file_handler")

URL = "https://bucket.example.com/out.mp3?X-Amz-Signature=abc"
# values tried on every option of the SDK's type that admits them
PROBE_STRINGS = ("natural", "legacy", "muted", "nightly", "loud", URL, "http://x.org/a", "a")
PROBE_NUMBERS = (-80, -80.5, -16, -0.5, 0, 0.5, 5)

# Values the Python SDK lets through that cvsyncd refuses, with the reason (the section
# "Where the sources disagree" of docs/cleanvoice-api.md says the same).
SDK_ONLY: dict[str, Callable[[Any], bool]] = {
    # the docs' table and the JS SDK's type allow only auto, mp3, wav, flac, m4a
    "export_format": lambda v: v in ("aac", "opus"),
    # the SDK types these as any string; the docs name the strings each one takes
    "breath": lambda v: isinstance(v, str),
    "studio_sound": lambda v: isinstance(v, str),
    "sound_studio": lambda v: isinstance(v, str),
    # the docs: a URL the results are PUT to; cvsyncd sends only https (it is a credential)
    "signed_url": lambda v: isinstance(v, str),
    # the SDK refuses only > 0; the docs' default is -16 and 0 LUFS is no loudness target
    "target_lufs": lambda v: v == 0,
}


def sdk_accepts(options: dict[str, Any]) -> bool:
    """Whether the SDK's own checks let ``options`` through (as ``Cleanvoice.process``
    builds them, minus its silent fix-ups)."""
    try:
        model = sdk_types.ProcessingConfig(**options)
        sdk_files.validate_config(model.model_dump(exclude_none=True))
    except Exception:  # pydantic's ValidationError, the SDK's FileValidationError
        return False
    return True


def cvsyncd_accepts(options: dict[str, Any]) -> bool:
    return presets.validate_options(options, "f.toml", "presets.p") == []


def emulator_accepts(options: dict[str, Any]) -> bool:
    return emulator_vocabulary.validate_config(presets.normalize_options(options)) == []


def with_requirements(key: str, value: Any) -> dict[str, Any]:
    """``{key: value}`` with what it needs (summarize needs transcription …) set too."""
    options = {key: value}
    if key in ("summarize", "social_content") and value is True:
        options["transcription"] = options["summarize"] = True
    return options


def cvsyncd_values() -> Iterator[tuple[str, Any]]:
    """Every value cvsyncd's table accepts, key by key (bounds and every choice)."""
    for key, option in presets.VOCABULARY.items():
        if key == presets.TEMPLATE_KEY or key in presets.LOCAL_KEYS:
            continue  # beside the config, or never sent
        if "bool" in option.kinds:
            yield from ((key, v) for v in (True, False))
        yield from ((key, v) for v in option.choices)
        if option.at_most is not None:
            yield from ((key, v) for v in (option.at_most, option.at_most - 0.5, -80))
        if option.below is not None:
            yield from ((key, v) for v in (option.below - 0.5, -16, -80.5))
        if "https_url" in option.kinds:
            yield key, URL


def sdk_values() -> Iterator[tuple[str, Any]]:
    """Values to try on every field of the SDK's ``ProcessingConfig``, from its types."""
    for key, field in sdk_types.ProcessingConfig.model_fields.items():
        kinds = _flatten(field.annotation)
        for kind in kinds:
            if kind is bool:
                yield from ((key, v) for v in (True, False))
            elif kind is str:
                yield from ((key, v) for v in PROBE_STRINGS)
            elif kind in (float, int):
                yield from ((key, v) for v in PROBE_NUMBERS)
            elif typing.get_origin(kind) is typing.Literal:
                yield from ((key, v) for v in typing.get_args(kind))


def _flatten(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, pytypes.UnionType):
        return [k for arg in typing.get_args(annotation) for k in _flatten(arg)]
    return [] if annotation is type(None) else [annotation]


@pytest.mark.parametrize(("key", "value"), list(cvsyncd_values()))
def test_every_value_cvsyncd_accepts_passes_the_sdk_and_the_emulator(key: str, value: Any) -> None:
    options = with_requirements(key, value)
    assert cvsyncd_accepts(options)
    assert sdk_accepts(options), f"the official SDK refuses {key} = {value!r}"
    assert emulator_accepts(options), f"the emulator refuses {key} = {value!r}"


def test_the_probe_really_covers_the_sdk() -> None:
    """Every SDK field is tried with at least one value (the generator understood it)."""
    tried = {key for key, _ in sdk_values()}
    assert tried == set(sdk_types.ProcessingConfig.model_fields)


def test_what_the_sdk_lets_through_cvsyncd_takes_but_for_the_documented_disagreements() -> None:
    disagreements: dict[str, list[Any]] = {}
    for key, value in sdk_values():
        options = with_requirements(key, value)
        if sdk_accepts(options) and not cvsyncd_accepts(options):
            rule = SDK_ONLY.get(key)
            assert rule is not None and rule(value), (
                f"the SDK accepts {key} = {value!r} and cvsyncd refuses it, for no documented "
                "reason: accept it, or add it to SDK_ONLY and docs/cleanvoice-api.md"
            )
            disagreements.setdefault(key, []).append(value)
    # no stale entry: each documented disagreement still exists
    stale = set(SDK_ONLY) - set(disagreements) - {"sound_studio"}  # an alias, not a field
    assert not stale, f"these no longer disagree with the SDK: {sorted(stale)}"
    assert set(disagreements["export_format"]) == {"aac", "opus"}


def test_the_emulator_and_cvsyncd_follow_the_docs_where_the_sdk_is_looser() -> None:
    for key, value in sdk_values():
        options = with_requirements(key, value)
        # cvsyncd never sends these; the emulator, built from the docs, refuses the
        # documented cases (export_format) and may be looser where the docs are silent
        if key == "export_format" and SDK_ONLY[key](value) and not cvsyncd_accepts(options):
            assert not emulator_accepts(options), f"{key} = {value!r}"


@pytest.mark.parametrize("value", [1, 42, 2**31 - 1])
def test_template_ids_cvsyncd_accepts_pass_the_sdk(value: int) -> None:
    assert cvsyncd_accepts({presets.TEMPLATE_KEY: value})
    edit = sdk_types.EditInput(files=["https://x.org/a.wav"], config={}, template_id=value)
    assert edit.template_id == value
    body = {"input": {"files": ["https://x.org/a.wav"], "config": {}, "template_id": value}}
    assert not isinstance(emulator_vocabulary.parse_edit_request(body), list)


@pytest.mark.parametrize("value", [0, -3, True, "42", 4.0])
def test_template_ids_cvsyncd_refuses(value: Any) -> None:
    assert not cvsyncd_accepts({presets.TEMPLATE_KEY: value})


def test_every_disagreement_is_written_down_for_users() -> None:
    notes = (REPO / "docs" / "cleanvoice-api.md").read_text(encoding="utf-8")
    section = notes.split("## Where the sources disagree", 1)[1].split("\n## ", 1)[0]
    for key in (*SDK_ONLY, presets.TEMPLATE_KEY):
        assert f"`{key}`" in section, key
