"""`cvsyncd init`: the starter config parses, is private, is never written over."""

from __future__ import annotations

import re
import stat
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from cvsyncd.config import load_config
from cvsyncd.config.presets import validate_options
from cvsyncd.config.starter import STARTERS, ask, ask_dashboard, starter_config, write_starter
from cvsyncd.errors import ConfigError, CvsyncdError


def answers(*given: str) -> tuple[Callable[[str], str], list[str]]:
    """A prompt function answering ``given`` in turn; also returns the questions asked."""
    asked: list[str] = []
    pending = list(given)

    def prompt(question: str) -> str:
        asked.append(question)
        return pending.pop(0)

    return prompt, asked


def env_for(tmp_path: Path) -> dict[str, str]:
    return {"HOME": str(tmp_path / "home")}


@pytest.mark.parametrize("name", list(STARTERS))
def test_each_starter_is_a_valid_preset(name: str) -> None:
    assert validate_options(STARTERS[name].options, "x.toml", f"presets.{name}") == []


@pytest.mark.parametrize("name", list(STARTERS))
@pytest.mark.parametrize("after", ["keep", "move", "delete"])
def test_the_written_file_loads(tmp_path: Path, name: str, after: str) -> None:
    text = starter_config(
        tmp_path / "in", tmp_path / "out", name, STARTERS[name].options, after, "api_key"
    )
    path = tmp_path / "etc" / "cvsyncd.toml"
    write_starter(path, text, env_for(tmp_path))
    config = load_config(path, env_for(tmp_path))
    (folder,) = config.folders
    assert folder.inbox == tmp_path / "in" and folder.outbox == tmp_path / "out"
    assert folder.preset == name and folder.after == after
    assert dict(folder.options) == dict(STARTERS[name].options)
    assert config.cleanvoice.api_key_file == tmp_path / "etc" / "api_key"  # relative: beside


def test_the_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "cvsyncd.toml"
    write_starter(path, starter_config("in", "out", "podcast", {}, "keep", None))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "cvsyncd.toml"
    path.write_text("# mine\n")
    with pytest.raises(CvsyncdError) as caught:
        write_starter(path, starter_config("in", "out", "podcast", {}, "keep", None))
    assert "already exists" in str(caught.value) and str(path) in str(caught.value)
    assert path.read_text() == "# mine\n"


def test_an_invalid_config_is_not_written(tmp_path: Path) -> None:
    path = tmp_path / "cvsyncd.toml"
    text = starter_config("in", "in", "podcast", {"fillers": "yes"}, "keep", None)
    with pytest.raises(ConfigError) as caught:
        write_starter(path, text, env_for(tmp_path))
    keys = {problem.key for problem in caught.value.problems}
    assert {"folders[1].outbox", "presets.podcast.fillers"} <= keys
    assert not path.exists()


def test_odd_paths_are_quoted_by_toml(tmp_path: Path) -> None:
    inbox = tmp_path / 'in "quoted" \\ back\tslash ünï'
    text = starter_config(inbox, tmp_path / "out", "noise-only", {}, "keep", None)
    config = load_config(write_file(tmp_path, text), env_for(tmp_path))
    assert config.folders[0].inbox == inbox


def test_without_a_key_file_the_key_file_line_is_a_comment(tmp_path: Path) -> None:
    text = starter_config("in", "out", "podcast", {}, "keep", None)
    assert "\n# api_key_file = " in text
    config = load_config(write_file(tmp_path, text), env_for(tmp_path))
    assert config.cleanvoice.api_key_file is None


def test_every_commented_setting_is_a_real_key(tmp_path: Path) -> None:
    # the comments show settings one may switch on: uncommented, they must still parse
    text = starter_config("in", "out", "podcast", {}, "move", None)
    shown = re.findall(r"^# ([a-z_]+) = .*$", text, flags=re.MULTILINE)
    assert {"api_key_file", "base_url", "state_dir", "settle_seconds", "done_dir"} <= set(shown)
    uncommented = re.sub(r"^# ([a-z_]+ = )", r"\1", text, flags=re.MULTILINE)
    config = load_config(write_file(tmp_path, uncommented), env_for(tmp_path))
    assert config.folders[0].done_dir == tmp_path / "in" / "done"
    assert config.daemon.settle_seconds == 5


def test_the_text_is_commented_and_toml(tmp_path: Path) -> None:
    text = starter_config("in", "out", "interview", STARTERS["interview"].options, "move", None)
    data = tomllib.loads(text)
    assert data["presets"]["interview"]["transcription"] is True
    assert text.startswith("# cvsyncd configuration")
    assert "[[folders]]" in text  # a table, not an inline array, for people to extend
    assert all(len(line) <= 100 for line in text.splitlines())


# -- the questions --------------------------------------------------------------------------


def test_ask_takes_the_defaults_on_empty_answers() -> None:
    prompt, asked = answers("", "", "", "")
    result = ask(prompt, {"inbox": "/srv/podcast/inbox"})
    assert result == {
        "inbox": "/srv/podcast/inbox",
        "outbox": "/srv/podcast/outbox",
        "preset_name": "podcast",
        "preset_options": dict(STARTERS["podcast"].options),
        "after": "keep",
    }
    assert asked[0] == "Inbox folder, where recordings are dropped [/srv/podcast/inbox]: "
    assert asked[1].endswith("[/srv/podcast/outbox]: ")
    assert "1) podcast" in asked[2] and "3) noise-only" in asked[2]


def test_ask_takes_answers_by_name_or_number(tmp_path: Path) -> None:
    prompt, _ = answers("~/Shows", "~/Shows-done", "3", "MOVE")
    result = ask(prompt)
    assert result["inbox"] == "~/Shows" and result["outbox"] == "~/Shows-done"
    assert result["preset_name"] == "noise-only" and result["after"] == "move"
    text = starter_config(**result, api_key_file=None)
    config = load_config(write_file(tmp_path, text), env_for(tmp_path))
    assert config.folders[0].inbox == tmp_path / "home" / "Shows"


def test_ask_again_after_a_wrong_answer() -> None:
    prompt, asked = answers("in", "in/results", "out", "podcst", "interview", "archive", "delete")
    result = ask(prompt)
    assert (result["outbox"], result["preset_name"], result["after"]) == (
        "out",
        "interview",
        "delete",
    )
    assert asked[2].startswith("The outbox must not lie inside the inbox")
    assert asked[4].startswith("'podcst' is not one of the presets: podcast, interview")
    assert asked[6].startswith("'archive' is not one of: keep, move, delete.")


def test_ask_gives_up_after_repeated_wrong_answers() -> None:
    prompt, _ = answers("in", "in", "in", "in", "in", "in")
    with pytest.raises(CvsyncdError, match="no usable answer"):
        ask(prompt)


def test_an_end_of_input_reaches_the_caller() -> None:
    def prompt(_question: str) -> str:
        raise EOFError

    with pytest.raises(EOFError):
        ask(prompt)


def write_file(tmp_path: Path, text: str, name: str = "cvsyncd.toml") -> Path:
    path = tmp_path / name
    write_starter(path, text, env_for(tmp_path))
    return path


# -- the dashboard --------------------------------------------------------------------------


def test_the_dashboard_is_shown_off_and_written_on(tmp_path: Path) -> None:
    off = starter_config("in", "out", "podcast", {}, "move", None)
    assert "[web]" not in tomllib.loads(off)
    on = starter_config("in", "out", "podcast", {}, "move", None, web_listen="127.0.0.1:8750")
    assert tomllib.loads(on)["web"] == {"listen": "127.0.0.1:8750"}
    uncommented = re.sub(r"^# ([a-z_]+ = )", r"\1", on, flags=re.MULTILINE)
    config = load_config(write_file(tmp_path, uncommented), env_for(tmp_path))
    assert config.web is not None and config.web.port == 8750
    assert config.web.password_file == Path("/etc/cvsyncd/web_password")


def test_ask_dashboard_takes_the_default_and_yes_or_no() -> None:
    assert ask_dashboard(answers("")[0], default=True) == "127.0.0.1:8750"
    assert ask_dashboard(answers("")[0], default=False) is None
    prompt, asked = answers("maybe", "N")
    assert ask_dashboard(prompt, default=True) is None
    assert len(asked) == 2 and "[Y/n]" in asked[0]
