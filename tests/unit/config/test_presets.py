"""The Cleanvoice option vocabulary: values, aliases, rules between keys, and the wording."""

from __future__ import annotations

from typing import Any

import pytest

from cvsyncd.config import presets
from cvsyncd.config.presets import ALIASES, VOCABULARY, normalize_options, validate_options
from cvsyncd.config.schema import key_path, show_value
from cvsyncd.errors import Problem
from tests.conftest import REPO


def check(options: dict[str, Any]) -> list[str]:
    return [str(p) for p in validate_options(options, "cvsyncd.toml", "presets.talk")]


def test_a_valid_table_has_no_problems() -> None:
    options = {
        "fillers": True,
        "long_silences": False,
        "breath": "natural",
        "studio_sound": "nightly",
        "mute_lufs": -70,
        "target_lufs": -16.5,
        "export_format": "flac",
        "transcription": True,
        "summarize": True,
        "social_content": True,
        "signed_url": "https://bucket.example.com/out.mp3?X-Amz-Signature=abc",
        "merge": True,
        "automix": False,
    }
    assert check(options) == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("breath", True),
        ("breath", "legacy"),
        ("breath", "muted"),
        ("studio_sound", False),
        ("mute_lufs", 0),
        ("mute_lufs", -80.0),
        ("target_lufs", -0.5),
        ("export_format", "auto"),
        ("export_format", "m4a"),
        ("template_id", 42),
    ],
)
def test_accepted_values(key: str, value: Any) -> None:
    assert check({key: value}) == []


def test_unknown_key_says_did_you_mean_and_lists_valid_keys() -> None:
    [problem] = validate_options({"filers": True}, "cvsyncd.toml", "presets.podcast")
    assert problem.key == "presets.podcast.filers"
    assert problem.message == "unknown key (did you mean `fillers`?)"
    assert "long_silences" in problem.valid and "signed_url" in problem.valid


def test_unknown_key_without_a_close_match_has_no_guess() -> None:
    [problem] = validate_options({"language": "en"}, "f.toml", "presets.x")
    assert problem.message == "unknown key"


def test_extra_keys_are_left_to_the_caller_but_suggested() -> None:
    assert validate_options({"extends": "base"}, "f", "p", extra_keys=("extends",)) == []
    [problem] = validate_options({"extend": "base"}, "f", "p", extra_keys=("extends",))
    assert "did you mean `extends`?" in problem.message


@pytest.mark.parametrize(
    ("key", "value", "message", "valid"),
    [
        ("fillers", "yes", 'the string "yes" is not accepted here', "true or false"),
        ("fillers", "true", "(write true without quotes)", "true or false"),
        ("fillers", 1, "the integer 1 is not accepted here", "true or false"),
        (
            "breath",
            "nat",
            '"nat" is not one of the choices (did you mean "natural"?)',
            'true or false, or one of "natural", "legacy", "muted"',
        ),
        (
            "studio_sound",
            "Nightly",
            '(did you mean "nightly"?)',
            'true or false, or one of "nightly"',
        ),
        ("mute_lufs", 3, "must be at most 0, got 3", "a number ≤ 0"),
        ("mute_lufs", True, "the boolean true is not accepted here", "a number ≤ 0"),
        ("mute_lufs", float("nan"), "must be a finite number, got nan", "a number ≤ 0"),
        ("target_lufs", 0, "must be below 0, got 0", "a number < 0"),
        ("target_lufs", "-16", 'the string "-16" is not accepted here', "a number < 0"),
        ("export_format", "MP3", '"MP3" is not one of the choices (did you mean "mp3"?)', '"m4a"'),
        ("export_format", "ogg", '"ogg" is not one of the choices', '"auto", "mp3", "wav"'),
        ("export_format", "opus", '"opus" is not one of the choices', '"flac", "m4a"'),
        ("export_format", "aac", '"aac" is not one of the choices', '"flac", "m4a"'),
        ("template_id", 0, "must be a whole number ≥ 1, got 0", "a whole number ≥ 1"),
        ("template_id", "42", 'the string "42" is not accepted here', "a whole number ≥ 1"),
        ("template_id", True, "the boolean true is not accepted here", "a whole number ≥ 1"),
        ("template_id", 4.2, "the number 4.2 is not accepted here", "a whole number ≥ 1"),
        ("merge", [True], "an array is not accepted here", "true or false"),
        ("automix", {"on": True}, "a table is not accepted here", "true or false"),
    ],
)
def test_wrong_values_say_what_is_wrong_and_what_is_valid(
    key: str, value: Any, message: str, valid: str
) -> None:
    [problem] = validate_options({key: value}, "f.toml", "presets.talk")
    assert problem.key == f"presets.talk.{key}"
    assert message in problem.message
    assert valid in problem.valid


def test_signed_url_must_be_https_and_is_never_repeated() -> None:
    secret = "http://bucket.example.com/out.mp3?X-Amz-Signature=SECRET123"
    [problem] = validate_options({"signed_url": secret}, "f.toml", "presets.talk")
    assert "must be an https:// URL" in problem.message
    assert "SECRET123" not in str(problem)
    [problem] = validate_options({"signed_url": "bucket/out.mp3"}, "f.toml", "presets.talk")
    assert "bucket/out.mp3" not in str(problem)


def test_legacy_alias_is_normalised() -> None:
    assert check({"sound_studio": "nightly"}) == []
    assert normalize_options({"sound_studio": "nightly", "fillers": True}) == {
        "studio_sound": "nightly",
        "fillers": True,
    }
    assert ALIASES["sound_studio"] == "studio_sound"


def test_legacy_alias_is_checked_like_its_key() -> None:
    [problem] = validate_options({"sound_studio": "daily"}, "f.toml", "presets.talk")
    assert problem.key == "presets.talk.sound_studio"
    assert '"daily" is not one of the choices' in problem.message


def test_alias_and_key_together_is_an_error() -> None:
    [problem] = validate_options(
        {"sound_studio": True, "studio_sound": "nightly"}, "f.toml", "presets.talk"
    )
    assert problem.key == "presets.talk.sound_studio"
    assert problem.message == "`sound_studio` is the old name of `studio_sound`, and both are set"
    assert problem.valid == "keep only `studio_sound`"


def test_summarize_needs_transcription() -> None:
    [problem] = validate_options({"summarize": True}, "f.toml", "presets.talk")
    assert problem.key == "presets.talk.summarize"
    assert problem.message == "`summarize = true` needs `transcription = true`"
    assert problem.valid == "add `transcription = true` to this preset, or remove `summarize`"


def test_summarize_with_transcription_false_says_set() -> None:
    [problem] = validate_options(
        {"summarize": True, "transcription": False}, "f.toml", "presets.talk"
    )
    assert problem.valid.startswith("set `transcription = true` in this preset")


def test_social_content_alone_names_everything_it_needs() -> None:
    [problem] = validate_options({"social_content": True}, "f.toml", "presets.talk")
    assert problem.message == (
        "`social_content = true` needs `summarize = true` and `transcription = true`"
    )
    assert problem.valid.startswith("add `summarize = true` and `transcription = true`")


def test_social_content_with_summarize_but_no_transcription_reports_summarize() -> None:
    found = validate_options({"social_content": True, "summarize": True}, "f", "presets.talk")
    assert [p.key for p in found] == ["presets.talk.summarize"]


def test_false_needs_nothing() -> None:
    assert check({"summarize": False, "social_content": False}) == []


def test_several_problems_at_once() -> None:
    found = check({"filers": True, "breath": "loud", "mute_lufs": 5})
    assert len(found) == 3
    assert found[0].startswith("cvsyncd.toml:presets.talk.filers: unknown key")


def test_every_option_can_be_described() -> None:
    for name, option in VOCABULARY.items():
        assert option.valid, name
        assert option.description, name


def test_vocabulary_matches_the_official_sdk() -> None:
    """The official SDK rejects unknown keys; our table must know exactly its keys (and
    ``template_id``, which it takes beside the config)."""
    types = pytest.importorskip("cleanvoice.types")
    config_keys = set(VOCABULARY) - {presets.TEMPLATE_KEY, *presets.LOCAL_KEYS}
    assert config_keys == set(types.ProcessingConfig.model_fields)
    assert presets.TEMPLATE_KEY in types.EditInput.model_fields


def test_docs_list_every_option() -> None:
    reference = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    for name in [*VOCABULARY, *ALIASES]:
        assert f"`{name}`" in reference, name


def test_requirements_only_name_known_keys() -> None:
    for rule in presets.REQUIREMENTS:
        assert rule.key in VOCABULARY and rule.needs in VOCABULARY


@pytest.mark.parametrize(
    ("prefix", "key", "path"),
    [
        ("presets", "podcast", "presets.podcast"),
        ("presets", "my show", 'presets."my show"'),
        ("presets", "a.b", 'presets."a.b"'),
        ("", "daemon", "daemon"),
    ],
)
def test_key_path_quotes_like_toml(prefix: str, key: str, path: str) -> None:
    assert key_path(prefix, key) == path


@pytest.mark.parametrize(
    ("value", "shown"),
    [(True, "true"), (False, "false"), (-80.0, "-80"), (0.5, "0.5"), ("a", '"a"'), (3, "3")],
)
def test_show_value_writes_toml(value: Any, shown: str) -> None:
    assert show_value(value) == shown


def test_problem_renders_file_key_message_and_valid() -> None:
    [problem] = validate_options({"export_format": "ogg"}, "/etc/cvsyncd.toml", "presets.a")
    assert isinstance(problem, Problem)
    assert str(problem) == (
        '/etc/cvsyncd.toml:presets.a.export_format: "ogg" is not one of the choices — valid: '
        'one of "auto", "mp3", "wav", "flac", "m4a"'
    )
