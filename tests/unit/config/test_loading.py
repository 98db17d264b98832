"""Reading the config file: defaults, paths, presets, folders, every problem at once."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from cvsyncd.config import Config, DaemonSettings, Folder, load_config, parse_config
from cvsyncd.config import folders as folders_module
from cvsyncd.config.loading import DAEMON_KEYS
from cvsyncd.errors import ConfigError, Problem
from tests.conftest import REPO

FOLDER = """
[[folders]]
inbox = "in"
outbox = "out"
preset = {}
"""
CANARY = "cv-canary-5eCr3T-key"


def write(tmp_path: Path, text: str, name: str = "cvsyncd.toml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Config:
    env = {"HOME": str(tmp_path / "home")} if env is None else env
    return load_config(write(tmp_path, text), env)


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, env)
    return caught.value.problems


def problem(tmp_path: Path, text: str, key: str) -> Problem:
    """Return the one problem reported at ``key``."""
    found = [p for p in problems(tmp_path, text) if p.key == key]
    assert len(found) == 1, found
    return found[0]


# -- the example and the defaults -----------------------------------------------------------


def test_the_example_config_parses() -> None:
    env = {"HOME": "/home/pod"}
    config = load_config(REPO / "config.example.toml", env)
    podcast, interviews = config.folders
    assert podcast.name == "podcast" and podcast.after == "move" and podcast.preset == "podcast"
    assert podcast.done_dir == Path("/srv/podcast/inbox/done")
    assert podcast.options["studio_sound"] == "nightly"
    assert interviews.preset is None and interviews.options["export_format"] == "wav"
    assert interviews.inbox == Path("/home/pod/Interviews/inbox")
    assert config.presets["podcast-social"]["social_content"] is True
    assert config.presets["podcast-social"]["fillers"] is True  # from extends
    assert config.cleanvoice.api_key_file == Path("/etc/cvsyncd/api_key")
    assert config.budget.backlog_hours == 2 and podcast.existing == "auto"


def test_parse_config_is_pure(tmp_path: Path) -> None:
    data = {"folders": [{"inbox": "a", "outbox": "b", "preset": {"fillers": True}}]}
    config = parse_config(data, tmp_path / "nowhere" / "c.toml", {"HOME": "/h"})
    assert config.folders[0].inbox == tmp_path / "nowhere" / "a"
    assert config.path == tmp_path / "nowhere" / "c.toml"
    assert not (tmp_path / "nowhere").exists()


def test_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, FOLDER)
    assert config.cleanvoice.base_url == "https://api.cleanvoice.ai/v2"
    assert config.cleanvoice.api_key_file is None
    daemon = config.daemon
    assert (daemon.settle_seconds, daemon.poll_initial_seconds) == (5.0, 30.0)
    assert (daemon.poll_max_seconds, daemon.poll_min_seconds) == (120.0, 5.0)
    assert (daemon.max_concurrent_uploads, daemon.max_active_edits) == (2, 4)
    assert daemon.log_level == "info" and daemon.resubmit_ambiguous is False
    [folder] = config.folders
    assert folder.after == "keep"
    assert folder.done_dir == tmp_path / "in" / "done"
    assert folder.failed_dir == tmp_path / "in" / "failed"
    assert folder.name == "in"
    assert folder.key == str(tmp_path / "in")
    assert dict(folder.options) == {}


def test_schema_defaults_match_the_dataclass() -> None:
    for field in dataclasses.fields(DaemonSettings):
        if field.name != "state_dir":
            assert DAEMON_KEYS[field.name].default == field.default, field.name
    assert set(DAEMON_KEYS) == {f.name for f in dataclasses.fields(DaemonSettings)}
    folder_fields = {f.name for f in dataclasses.fields(Folder)} - {"options"}
    assert set(folders_module.FOLDER_KEYS) == folder_fields


def test_all_daemon_settings(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        [daemon]
        state_dir = "state"
        settle_seconds = 2.5
        poll_initial_seconds = 10
        poll_max_seconds = 60
        poll_min_seconds = 10
        max_concurrent_uploads = 1
        max_active_edits = 8
        log_level = "DEBUG"
        resubmit_ambiguous = true
        """
        + FOLDER,
    )
    assert config.daemon == DaemonSettings(
        state_dir=tmp_path / "state",
        settle_seconds=2.5,
        poll_initial_seconds=10.0,
        poll_max_seconds=60.0,
        poll_min_seconds=10.0,
        max_concurrent_uploads=1,
        max_active_edits=8,
        log_level="debug",
        resubmit_ambiguous=True,
    )
    assert isinstance(config.daemon.poll_initial_seconds, float)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"STATE_DIRECTORY": "/var/lib/cvsyncd", "XDG_STATE_HOME": "/x"}, "/var/lib/cvsyncd"),
        ({"STATE_DIRECTORY": "/var/lib/cvsyncd:/var/lib/other"}, "/var/lib/cvsyncd"),
        ({"STATE_DIRECTORY": "", "XDG_STATE_HOME": "/x/state"}, "/x/state/cvsyncd"),
        ({"XDG_STATE_HOME": "relative/ignored", "HOME": "/home/u"}, "/home/u/.local/state/cvsyncd"),
        ({"HOME": "/home/u"}, "/home/u/.local/state/cvsyncd"),
    ],
)
def test_state_dir_default_comes_from_the_environment(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    assert load(tmp_path, FOLDER, env).daemon.state_dir == Path(expected)


def test_state_dir_in_the_file_wins(tmp_path: Path) -> None:
    env = {"STATE_DIRECTORY": "/var/lib/cvsyncd"}
    config = load(tmp_path, '[daemon]\nstate_dir = "/srv/state"\n' + FOLDER, env)
    assert config.daemon.state_dir == Path("/srv/state")


# -- paths ----------------------------------------------------------------------------------


def test_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [cleanvoice]
        api_key_file = "secret/key"
        [[folders]]
        inbox = "../media/./in"
        outbox = "../media/out/"
        done_dir = "used"
        failed_dir = "~/failed"
        preset = {}
        """,
        name="etc/cvsyncd.toml",
    )
    config = load_config(path, {"HOME": "/home/u"})
    [folder] = config.folders
    assert folder.inbox == tmp_path / "media" / "in"
    assert folder.outbox == tmp_path / "media" / "out"
    assert folder.done_dir == tmp_path / "etc" / "used"
    assert folder.failed_dir == Path("/home/u/failed")
    assert config.cleanvoice.api_key_file == tmp_path / "etc" / "secret" / "key"
    assert config.path == path


def test_relative_config_path_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, FOLDER)
    monkeypatch.chdir(tmp_path)
    config = load_config("cvsyncd.toml", {"HOME": "/h"})
    assert config.path == tmp_path / "cvsyncd.toml"
    assert config.folders[0].inbox == tmp_path / "in"


# -- frozen values --------------------------------------------------------------------------


def test_values_are_read_only_and_hashable(tmp_path: Path) -> None:
    config = load(tmp_path, "[presets.p]\nfillers = true\n" + FOLDER.replace("{}", '"p"'))
    [folder] = config.folders
    with pytest.raises(TypeError):
        folder.options["fillers"] = False  # type: ignore[index]
    with pytest.raises(TypeError):
        config.presets["p"]["fillers"] = False  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        folder.after = "delete"  # type: ignore[misc]
    assert {folder: 1}[folder] == 1
    assert hash(config) == hash(
        load(tmp_path, "[presets.p]\nfillers = true\n" + FOLDER.replace("{}", '"p"'))
    )


def test_folder_made_by_hand_gets_a_read_only_copy_and_a_name() -> None:
    options = {"fillers": True}
    folder = Folder(
        inbox=Path("/srv/a/inbox"),
        outbox=Path("/srv/a/out"),
        preset=None,
        options=options,
        after="keep",
        done_dir=Path("/srv/a/inbox/done"),
        failed_dir=Path("/srv/a/inbox/failed"),
    )
    options["fillers"] = False
    assert folder.options["fillers"] is True
    assert folder.name == "inbox"


# -- every problem at once ------------------------------------------------------------------


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        [daemon]
        settle_seconds = 0
        max_active_edits = true
        lgo_level = "debug"

        [presets.podcast]
        filers = true

        [[folders]]
        inbox = "in"
        outbox = "in/out"
        preset = "podcats"
        after = "mvoe"
        """,
    )
    assert [p.key for p in found] == [
        "daemon.settle_seconds",
        "daemon.max_active_edits",
        "daemon.lgo_level",
        "presets.podcast.filers",
        "folders[1].after",
        "folders[1].preset",
        "folders[1].outbox",
    ]
    assert {p.file for p in found} == {str(tmp_path / "cvsyncd.toml")}
    lines = str(ConfigError(found)).splitlines()
    assert lines[0] == (
        f"{tmp_path / 'cvsyncd.toml'}:daemon.settle_seconds: must be greater than 0, got 0"
        " — valid: a number > 0"
    )
    assert (
        "daemon.lgo_level: unknown key (did you mean `log_level`?) — valid: state_dir" in lines[2]
    )
    assert "presets.podcast.filers: unknown key (did you mean `fillers`?)" in lines[3]
    assert '"mvoe" is not one of the choices (did you mean "move"?)' in lines[4]
    assert 'no preset named "podcats" (did you mean "podcast"?)' in lines[5]


def test_unknown_section_did_you_mean(tmp_path: Path) -> None:
    found = problem(tmp_path, "[deamon]\n" + FOLDER, "deamon")
    assert found.message == "unknown key (did you mean `daemon`?)"
    assert found.valid == "cleanvoice, daemon, budget, presets, folders, web, alerts, store"


def test_unknown_folder_key(tmp_path: Path) -> None:
    found = problem(tmp_path, FOLDER + 'outbx = "x"\n', "folders[1].outbx")
    assert found.message == "unknown key (did you mean `outbox`?)"
    assert "done_dir" in found.valid


def test_video_upload_audio_with_a_preset_that_cuts(tmp_path: Path) -> None:
    text = FOLDER.replace("preset = {}", "preset = { fillers = true }") + 'video_upload = "audio"\n'
    found = problem(tmp_path, text, "folders[1].video_upload")
    assert "fillers = true cuts" in found.message and "muted = true" in found.valid
    muted = text.replace("fillers = true", "fillers = true, muted = true")
    assert load(tmp_path, muted).folders[0].video_upload == "audio"
    auto = text.replace('video_upload = "audio"', 'video_upload = "auto"')
    assert load(tmp_path, auto).folders[0].video_upload == "auto"


def test_section_of_the_wrong_type(tmp_path: Path) -> None:
    found = problem(tmp_path, 'daemon = "fast"\n' + FOLDER, "daemon")
    assert found.message == 'must be a table, not the string "fast"'


@pytest.mark.parametrize(
    ("line", "key", "message", "valid"),
    [
        (
            "max_active_edits = true",
            "max_active_edits",
            "the boolean true is not a whole number",
            "a whole number ≥ 1",
        ),
        ("max_active_edits = 0", "max_active_edits", "must be at least 1, got 0", "≥ 1"),
        (
            "max_concurrent_uploads = 2.0",
            "max_concurrent_uploads",
            "the number 2 is not a whole number",
            "≥ 1",
        ),
        (
            "settle_seconds = true",
            "settle_seconds",
            "the boolean true is not a number",
            "a number > 0",
        ),
        (
            'settle_seconds = "5"',
            "settle_seconds",
            'the string "5" is not a number',
            "a number > 0",
        ),
        ("settle_seconds = -1", "settle_seconds", "must be greater than 0, got -1", "a number > 0"),
        ("settle_seconds = inf", "settle_seconds", "must be greater than 0, got inf", ""),
        ("poll_min_seconds = 0", "poll_min_seconds", "must be greater than 0", ""),
        (
            'log_level = "verbose"',
            "log_level",
            '"verbose" is not one of the choices',
            '"debug", "info", "warning", "error"',
        ),
        ('log_level = "warn"', "log_level", '(did you mean "warning"?)', ""),
        (
            'resubmit_ambiguous = "yes"',
            "resubmit_ambiguous",
            'the string "yes" is not true or false',
            "true or false",
        ),
        ("state_dir = 3", "state_dir", "the integer 3 is not a path", "a folder path"),
    ],
)
def test_daemon_values(tmp_path: Path, line: str, key: str, message: str, valid: str) -> None:
    found = problem(tmp_path, f"[daemon]\n{line}\n" + FOLDER, f"daemon.{key}")
    assert message in found.message
    assert valid in found.valid


def test_ints_are_accepted_for_numbers(tmp_path: Path) -> None:
    config = load(tmp_path, "[daemon]\nsettle_seconds = 1\n" + FOLDER)
    assert config.daemon.settle_seconds == 1.0


def test_poll_bounds_depend_on_each_other(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        [daemon]
        poll_initial_seconds = 30
        poll_max_seconds = 20
        poll_min_seconds = 25
        """
        + FOLDER,
    )
    assert [(p.key, p.message, p.valid) for p in found] == [
        (
            "daemon.poll_max_seconds",
            "must be ≥ poll_initial_seconds (30), got 20",
            "a number > 0 and ≥ poll_initial_seconds",
        ),
        (
            "daemon.poll_min_seconds",
            "must be ≤ poll_max_seconds (20), got 25",
            "a number > 0 and ≤ poll_max_seconds",
        ),
    ]


def test_poll_bound_is_reported_at_the_key_the_user_wrote(tmp_path: Path) -> None:
    found = problems(tmp_path, "[daemon]\npoll_initial_seconds = 200\n" + FOLDER)
    assert [(p.key, p.message) for p in found] == [
        ("daemon.poll_initial_seconds", "must be ≤ poll_max_seconds (120), got 200"),
    ]
    found = problems(
        tmp_path, "[daemon]\npoll_max_seconds = 4\npoll_initial_seconds = 4\n" + FOLDER
    )
    assert [(p.key, p.message) for p in found] == [
        ("daemon.poll_max_seconds", "must be ≥ poll_min_seconds (5), got 4"),
    ]


def test_poll_bounds_are_checked_even_with_other_problems(tmp_path: Path) -> None:
    found = problems(tmp_path, "[daemon]\nsettle_seconds = 0\npoll_max_seconds = 20\n" + FOLDER)
    assert [p.key for p in found] == ["daemon.settle_seconds", "daemon.poll_max_seconds"]


# -- base_url -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        ("https://api.cleanvoice.ai/v2/", "https://api.cleanvoice.ai/v2"),
        ("http://127.0.0.1:8765/v2", "http://127.0.0.1:8765/v2"),
        ("http://localhost:8765/v2", "http://localhost:8765/v2"),
        ("http://[::1]:8765/v2", "http://[::1]:8765/v2"),
        ("https://cleanvoice.example.org", "https://cleanvoice.example.org"),
    ],
)
def test_base_url_accepted(tmp_path: Path, url: str, stored: str) -> None:
    config = load(tmp_path, f'[cleanvoice]\nbase_url = "{url}"\n' + FOLDER)
    assert config.cleanvoice.base_url == stored


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "http://api.cleanvoice.ai/v2",
            "http:// would send the API key unencrypted to api.cleanvoice.ai; it is only for a "
            'local emulator (127.0.0.1, localhost, ::1). Write "https://api.cleanvoice.ai/v2" '
            "instead",
        ),
        (
            "api.cleanvoice.ai/v2",
            'is not an http(s) URL with a host; write "https://api.cleanvoice.ai/v2"',
        ),
        ("ftp://api.cleanvoice.ai/v2", "is not an http(s) URL with a host"),
        ("https:///v2", "is not an http(s) URL with a host"),
        ("https://api.cleanvoice.ai/v2?x=1", "must not have a ?query or #fragment"),
        ("https://api.cleanvoice.ai:99999/v2", "has an invalid port number"),
    ],
)
def test_base_url_refused(tmp_path: Path, url: str, message: str) -> None:
    found = problem(tmp_path, f'[cleanvoice]\nbase_url = "{url}"\n' + FOLDER, "cleanvoice.base_url")
    assert message in found.message
    assert found.valid == "an https:// URL such as https://api.cleanvoice.ai/v2"


def test_base_url_with_a_password_is_not_repeated(tmp_path: Path) -> None:
    text = f'[cleanvoice]\nbase_url = "https://me:{CANARY}@api.cleanvoice.ai/v2"\n' + FOLDER
    found = problem(tmp_path, text, "cleanvoice.base_url")
    assert found.message == "must not contain a user name or password"
    assert CANARY not in str(found)


def test_api_key_in_the_config_is_refused_and_not_repeated(tmp_path: Path) -> None:
    found = problem(
        tmp_path, f'[cleanvoice]\napi_key = "{CANARY}"\n' + FOLDER, "cleanvoice.api_key"
    )
    assert found.message == "the API key itself does not belong in the config file"
    assert "api_key_file" in found.valid and "CLEANVOICE_API_KEY" in found.valid
    assert CANARY not in str(found)


# -- presets --------------------------------------------------------------------------------


def test_named_preset_options_are_exactly_what_the_user_set(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        [presets.podcast]
        fillers = true
        sound_studio = "nightly"
        mute_lufs = -60
        [[folders]]
        inbox = "in"
        outbox = "out"
        preset = "podcast"
        """,
    )
    assert dict(config.folders[0].options) == {
        "fillers": True,
        "studio_sound": "nightly",
        "mute_lufs": -60,
    }
    assert config.folders[0].preset == "podcast"


def test_extends_merges_key_by_key_along_a_chain(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        [presets.base]
        fillers = true
        long_silences = true
        transcription = true
        [presets.show]
        extends = "base"
        long_silences = false
        summarize = true
        [presets.special]
        extends = "show"
        studio_sound = "nightly"
        [[folders]]
        inbox = "in"
        outbox = "out"
        preset = "special"
        """,
    )
    assert dict(config.presets["special"]) == {
        "fillers": True,
        "long_silences": False,
        "transcription": True,
        "summarize": True,
        "studio_sound": "nightly",
    }
    assert "extends" not in config.presets["show"]
    assert dict(config.presets["base"]) == {
        "fillers": True,
        "long_silences": True,
        "transcription": True,
    }


def test_alias_in_a_child_overrides_the_key_of_its_base(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        [presets.base]
        studio_sound = true
        [presets.child]
        extends = "base"
        sound_studio = "nightly"
        """
        + FOLDER.replace("{}", '"child"'),
    )
    assert dict(config.folders[0].options) == {"studio_sound": "nightly"}


def test_inline_preset_may_extend_a_named_one(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        [presets.base]
        fillers = true
        [[folders]]
        inbox = "in"
        outbox = "out"
        preset = { extends = "base", export_format = "wav" }
        """,
    )
    [folder] = config.folders
    assert folder.preset is None
    assert dict(folder.options) == {"fillers": True, "export_format": "wav"}


def test_extends_cycle_is_reported_once(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        [presets.a]
        extends = "b"
        [presets.b]
        extends = "a"
        [presets.c]
        extends = "a"
        """
        + FOLDER.replace("{}", '"c"'),
    )
    assert [(p.key, p.message) for p in found] == [
        ("presets.b.extends", "presets extend each other in a circle: a → b → a"),
    ]
    assert found[0].valid == "a chain of `extends` that ends at a preset without one"


def test_a_preset_extending_itself_is_a_cycle(tmp_path: Path) -> None:
    found = problem(tmp_path, '[presets.a]\nextends = "a"\n' + FOLDER, "presets.a.extends")
    assert found.message == "presets extend each other in a circle: a → a"


def test_extends_an_unknown_preset(tmp_path: Path) -> None:
    text = '[presets.podcast]\nfillers = true\n[presets.x]\nextends = "podcst"\n' + FOLDER
    found = problem(tmp_path, text, "presets.x.extends")
    assert found.message == 'no preset named "podcst" (did you mean "podcast"?)'
    assert found.valid == 'one of the presets in this file: "podcast", "x"'


def test_extends_must_be_a_name(tmp_path: Path) -> None:
    found = problem(tmp_path, "[presets.x]\nextends = 3\n" + FOLDER, "presets.x.extends")
    assert found.message == "the integer 3 is not a preset name"


def test_preset_keys_are_checked_with_their_toml_path(tmp_path: Path) -> None:
    text = '[presets."my show"]\nfilers = true\nexport_format = "ogg"\nextend = "a"\n' + FOLDER
    found = problems(tmp_path, text)
    assert [p.key for p in found] == [
        'presets."my show".filers',
        'presets."my show".export_format',
        'presets."my show".extend',
    ]
    assert found[0].message == "unknown key (did you mean `fillers`?)"
    assert found[2].message == "unknown key (did you mean `extends`?)"


def test_cross_key_rule_sees_inherited_keys(tmp_path: Path) -> None:
    text = """
        [presets.base]
        transcription = true
        [presets.show]
        extends = "base"
        summarize = true
        social_content = true
    """
    assert load(tmp_path, text + FOLDER).presets["show"]["social_content"] is True


def test_cross_key_rule_in_a_named_preset(tmp_path: Path) -> None:
    found = problem(
        tmp_path, "[presets.show]\nsummarize = true\n" + FOLDER, "presets.show.summarize"
    )
    assert found.message == "`summarize = true` needs `transcription = true`"
    assert found.valid == "add `transcription = true` to this preset, or remove `summarize`"


def test_cross_key_rule_broken_by_a_child(tmp_path: Path) -> None:
    text = """
        [presets.base]
        transcription = true
        summarize = true
        [presets.show]
        extends = "base"
        transcription = false
    """
    found = problem(tmp_path, text + FOLDER, "presets.show.summarize")
    assert found.valid.startswith("set `transcription = true` in this preset")


def test_cross_key_rule_in_an_inline_preset(tmp_path: Path) -> None:
    text = FOLDER.replace("{}", "{ social_content = true, summarize = true }")
    found = problem(tmp_path, text, "folders[1].preset.summarize")
    assert found.message == "`summarize = true` needs `transcription = true`"


def test_inline_preset_values_are_checked(tmp_path: Path) -> None:
    text = FOLDER.replace("{}", '{ breath = "loud", filers = true }')
    found = problems(tmp_path, text)
    assert [p.key for p in found] == ["folders[1].preset.breath", "folders[1].preset.filers"]


def test_unknown_preset_name_lists_the_presets(tmp_path: Path) -> None:
    text = "[presets.podcast]\n[presets.talk]\n" + FOLDER.replace("{}", '"podcats"')
    found = problem(tmp_path, text, "folders[1].preset")
    assert found.message == 'no preset named "podcats" (did you mean "podcast"?)'
    assert found.valid == (
        'one of the presets in this file: "podcast", "talk"; '
        "or an inline table such as preset = { fillers = true }"
    )


def test_preset_name_without_any_presets(tmp_path: Path) -> None:
    found = problem(tmp_path, FOLDER.replace("{}", '"podcast"'), "folders[1].preset")
    assert found.valid.startswith("no presets are defined in this file; add a [presets.NAME] table")


def test_an_option_directly_under_presets_gets_a_hint(tmp_path: Path) -> None:
    found = problem(tmp_path, "[presets]\nfillers = true\n" + FOLDER, "presets.fillers")
    assert found.message == (
        "must be a table of Cleanvoice options; `fillers` is an option: put it in a named "
        "preset such as [presets.talk]"
    )


def test_preset_of_the_wrong_type(tmp_path: Path) -> None:
    found = problem(tmp_path, FOLDER.replace("{}", "3"), "folders[1].preset")
    assert found.message == "the integer 3 is neither a preset name nor a table"


# -- folders --------------------------------------------------------------------------------


def test_at_least_one_folder(tmp_path: Path) -> None:
    found = problem(tmp_path, "[daemon]\n", "folders")
    assert found.message == "no folders to watch"
    assert found.valid == "a [[folders]] table with inbox, outbox and preset"


def test_folders_written_as_a_single_table(tmp_path: Path) -> None:
    found = problem(tmp_path, '[folders]\ninbox = "in"\n', "folders")
    assert found.message == "must be an array of tables"
    assert found.valid == "[[folders]], in double brackets"


def test_required_folder_keys(tmp_path: Path) -> None:
    found = problems(tmp_path, '[[folders]]\nafter = "move"\n')
    assert [(p.key, p.message) for p in found] == [
        ("folders[1].inbox", "missing"),
        ("folders[1].outbox", "missing"),
        ("folders[1].preset", "missing"),
    ]
    assert found[0].valid == (
        'a folder path, e.g. inbox = "/srv/podcast/inbox"; ~ and paths relative to the config '
        "file work"
    )


def test_folder_index_is_one_based(tmp_path: Path) -> None:
    text = FOLDER + '[[folders]]\ninbox = "b"\noutbox = "c"\npreset = {}\nafter = "trash"\n'
    found = problem(tmp_path, text, "folders[2].after")
    assert found.valid == '"keep", "move", "delete"'


@pytest.mark.parametrize("after", ["keep", "move", "delete"])
def test_after_choices(tmp_path: Path, after: str) -> None:
    assert load(tmp_path, FOLDER + f'after = "{after}"\n').folders[0].after == after


def test_name_must_be_a_non_empty_string(tmp_path: Path) -> None:
    found = problem(tmp_path, FOLDER + 'name = " "\n', "folders[1].name")
    assert found.message == 'the string " " is not a non-empty string'


@pytest.mark.parametrize(
    ("inbox", "outbox", "key", "message"),
    [
        ("media", "media/", "folders[1].outbox", "is the inbox itself; results would be taken"),
        ("media", "media/out", "folders[1].outbox", "lies inside the inbox ("),
        ("media/in", "media", "folders[1].inbox", "lies inside the outbox ("),
    ],
)
def test_inbox_and_outbox_apart(
    tmp_path: Path, inbox: str, outbox: str, key: str, message: str
) -> None:
    text = f'[[folders]]\ninbox = "{inbox}"\noutbox = "{outbox}"\npreset = {{}}\n'
    found = problem(tmp_path, text, key)
    assert message in found.message


@pytest.mark.parametrize(
    ("line", "key", "message"),
    [
        ('done_dir = "in"', "folders[1].done_dir", "is the inbox itself"),
        ('failed_dir = "in/."', "folders[1].failed_dir", "is the inbox itself"),
        ('done_dir = "out"', "folders[1].done_dir", "is the outbox itself"),
        ('failed_dir = "out/failed"', "folders[1].failed_dir", "lies inside the outbox ("),
        (
            'done_dir = "x"\nfailed_dir = "x"',
            "folders[1].failed_dir",
            "is the same folder as done_dir",
        ),
    ],
)
def test_done_and_failed_places(tmp_path: Path, line: str, key: str, message: str) -> None:
    found = problem(tmp_path, FOLDER + line + "\n", key)
    assert message in found.message


def test_done_and_failed_may_lie_anywhere_else(tmp_path: Path) -> None:
    config = load(tmp_path, FOLDER + 'done_dir = "archive"\nfailed_dir = "in/sub/failed"\n')
    assert config.folders[0].done_dir == tmp_path / "archive"


def folders(*pairs: tuple[str, str]) -> str:
    return "".join(
        f'[[folders]]\ninbox = "{inbox}"\noutbox = "{outbox}"\npreset = {{}}\nname = "f{n}"\n'
        for n, (inbox, outbox) in enumerate(pairs)
    )


@pytest.mark.parametrize(
    ("second_inbox", "message"),
    [
        ("a/in", "is also the inbox of folders[1]"),
        ("a/in/show", "lies inside the inbox of folders[1] ("),
        ("a", "contains the inbox of folders[1] ("),
    ],
)
def test_inboxes_must_not_overlap(tmp_path: Path, second_inbox: str, message: str) -> None:
    found = problem(
        tmp_path, folders(("a/in", "a/out"), (second_inbox, "b/out")), "folders[2].inbox"
    )
    assert message in found.message
    assert found.valid == "inboxes apart from each other: each recording belongs to one folder"


def test_an_outbox_must_not_feed_another_inbox(tmp_path: Path) -> None:
    found = problem(tmp_path, folders(("a/in", "b/in/x"), ("b/in", "b/out")), "folders[1].outbox")
    assert "lies inside the inbox of folders[2] (" in found.message


def test_folder_names_are_unique(tmp_path: Path) -> None:
    text = (
        '[[folders]]\ninbox = "a/inbox"\noutbox = "a/out"\npreset = {}\n'
        '[[folders]]\ninbox = "b/inbox"\noutbox = "b/out"\npreset = {}\n'
    )
    found = problem(tmp_path, text, "folders[2].name")
    assert found.message.startswith('"inbox" is also the name of folders[1]')
    assert load(tmp_path, text + 'name = "b"\n').folders[1].name == "b"


def test_existence_of_folders_is_not_checked(tmp_path: Path) -> None:
    config = load(tmp_path, folders(("no/such/in", "no/such/out")))
    assert not config.folders[0].inbox.exists()


# -- reading the file -----------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "absent.toml", {})
    [found] = caught.value.problems
    assert found.file == str(tmp_path / "absent.toml")
    assert found.message == "cannot read the config file: No such file or directory"


def test_a_directory_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, {})
    assert caught.value.problems[0].message.startswith("cannot read the config file: ")


def test_invalid_toml_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "[daemon]\nsettle_seconds = 5\nlog_level = info\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    [found] = caught.value.problems
    assert found.file == str(path)
    assert found.message.startswith("invalid TOML at line 3, column ")
    assert str(found).startswith(f"{path}: invalid TOML at line 3, column ")
    assert str(found).endswith(" — valid: TOML, see https://toml.io")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[daemon]\nlog_level = "caf\xe9"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.problems[0].message == "is not UTF-8 text"


# -- the spend guard's keys -----------------------------------------------------------------


def test_the_budget_has_safe_defaults_and_reads_its_keys(tmp_path: Path) -> None:
    config = load(tmp_path, FOLDER)
    assert config.budget.backlog_hours == 2.0 and config.budget.unknown_duration_hours == 1.0
    assert config.budget.hours_per_day is None and config.budget.hours_per_month is None
    assert config.folders[0].existing == "auto" and config.folders[0].hours_per_month is None
    text = "[budget]\nhours_per_day = 3\nhours_per_month = 40\nbacklog_hours = 0\n" + FOLDER
    config = load(tmp_path, text + 'existing = "skip"\nhours_per_month = 10\n')
    assert (config.budget.hours_per_day, config.budget.hours_per_month) == (3.0, 40.0)
    assert config.budget.backlog_hours == 0.0
    assert (config.folders[0].existing, config.folders[0].hours_per_month) == ("skip", 10.0)


def test_budget_mistakes_are_reported_with_file_key_and_what_would_do(tmp_path: Path) -> None:
    text = (
        "[budget]\nhours_per_day = 50\nhours_per_month = 40\nunknown_duration_hours = -1\n"
        "backlog_hour = 3\n" + FOLDER + 'existing = "hld"\nhours_per_month = 0\n'
    )
    found = {p.key: p for p in problems(tmp_path, text)}
    assert set(found) == {
        "budget.hours_per_day",
        "budget.unknown_duration_hours",
        "budget.backlog_hour",
        "folders[1].existing",
        "folders[1].hours_per_month",
    }
    assert all(p.file.endswith("cvsyncd.toml") for p in found.values())
    assert "more than the month" in found["budget.hours_per_day"].message
    assert found["budget.unknown_duration_hours"].message == "must be 0 or more hours, got -1"
    assert found["budget.backlog_hour"].message == "unknown key (did you mean `backlog_hours`?)"
    existing = found["folders[1].existing"]
    assert existing.message == '"hld" is not one of the choices (did you mean "hold"?)'
    assert existing.valid == '"auto", "take", "hold", "skip"'
    cap = found["folders[1].hours_per_month"]
    assert cap.message == "must be more than 0 hours, got 0"
    assert cap.valid == "a number of hours > 0, e.g. 1.5 (leave the key out for no cap)"
