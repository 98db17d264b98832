"""Finding the API key: the systemd credential, the key file and its mode, the environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cvsyncd import config as config_module
from cvsyncd.config import Config, load_config
from cvsyncd.config.apikey import read_api_key
from cvsyncd.errors import ConfigError, Problem

FOLDER = """
[[folders]]
inbox = "in"
outbox = "out"
preset = {}
"""
CANARY = "cv-canary-5eCr3T-key"


def key_config(tmp_path: Path, key_file: str | None = None) -> Config:
    head = f'[cleanvoice]\napi_key_file = "{key_file}"\n' if key_file else ""
    path = tmp_path / "cvsyncd.toml"
    path.write_text(head + FOLDER, encoding="utf-8")
    return load_config(path, {"HOME": str(tmp_path / "home")})


def key_file(tmp_path: Path, content: str, mode: int, name: str = "api_key") -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    path.chmod(mode)
    return path


def key_problem(config: Config, env: dict[str, str]) -> Problem:
    with pytest.raises(ConfigError) as caught:
        read_api_key(config, env)
    [found] = caught.value.problems
    assert CANARY not in str(caught.value)
    return found


def test_key_file_with_mode_0600_is_used_and_stripped(tmp_path: Path) -> None:
    key_file(tmp_path, f"  {CANARY}\n", 0o600)
    config = key_config(tmp_path, "api_key")
    assert read_api_key(config, {}) == CANARY


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = key_file(tmp_path, CANARY, mode)
    found = key_problem(key_config(tmp_path, "api_key"), {})
    assert found.key == "cleanvoice.api_key_file"
    assert found.file == str(tmp_path / "cvsyncd.toml")
    assert found.message == (
        f"the key file {path} can be read by other users (mode {mode:04o}), so it is not used"
    )
    assert found.valid == f"chmod 600 {path}"


def test_key_file_refused_even_when_the_environment_has_a_key(tmp_path: Path) -> None:
    key_file(tmp_path, CANARY, 0o644)
    key_problem(key_config(tmp_path, "api_key"), {"CLEANVOICE_API_KEY": "other"})


def test_missing_key_file(tmp_path: Path) -> None:
    found = key_problem(key_config(tmp_path, "nothing-here"), {})
    assert found.message == (
        f"cannot read the key file {tmp_path / 'nothing-here'}: No such file or directory"
    )


def test_empty_key_file(tmp_path: Path) -> None:
    path = key_file(tmp_path, " \n", 0o600)
    found = key_problem(key_config(tmp_path, "api_key"), {})
    assert found.message == f"the key file {path} is empty"


def test_key_with_a_space_inside_is_refused_without_showing_it(tmp_path: Path) -> None:
    path = key_file(tmp_path, f"{CANARY} {CANARY}\n", 0o600)
    found = key_problem(key_config(tmp_path, "api_key"), {})
    assert found.message.startswith(f"the key file {path} holds spaces, line breaks")


def test_systemd_credential_wins(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    key_file(credentials, "from-credential\n", 0o400, name="cleanvoice_api_key")
    key_file(tmp_path, "from-file", 0o600)
    env = {"CREDENTIALS_DIRECTORY": str(credentials), "CLEANVOICE_API_KEY": "from-env"}
    assert read_api_key(key_config(tmp_path, "api_key"), env) == "from-credential"


def test_other_credentials_fall_through_to_the_key_file(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    key_file(tmp_path, "from-file", 0o600)
    env = {"CREDENTIALS_DIRECTORY": str(credentials)}
    assert read_api_key(key_config(tmp_path, "api_key"), env) == "from-file"


def test_empty_credential_is_an_error(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    path = key_file(credentials, "", 0o400, name="cleanvoice_api_key")
    found = key_problem(key_config(tmp_path), {"CREDENTIALS_DIRECTORY": str(credentials)})
    assert found.file == str(path)
    assert found.message == "the systemd credential is empty"


def test_environment_is_the_fallback(tmp_path: Path) -> None:
    assert read_api_key(key_config(tmp_path), {"CLEANVOICE_API_KEY": f" {CANARY}\n"}) == CANARY


def test_environment_key_with_a_line_break_is_refused(tmp_path: Path) -> None:
    found = key_problem(key_config(tmp_path), {"CLEANVOICE_API_KEY": f"{CANARY}\nX: y"})
    assert found.message.startswith("$CLEANVOICE_API_KEY holds spaces, line breaks")


def test_no_key_says_the_three_ways(tmp_path: Path) -> None:
    found = key_problem(key_config(tmp_path), {"CLEANVOICE_API_KEY": "  "})
    assert found.message == "no Cleanvoice API key found"
    assert "systemd credential named cleanvoice_api_key" in found.valid
    assert "cleanvoice.api_key_file, mode 0600" in found.valid
    assert "environment variable CLEANVOICE_API_KEY" in found.valid


def test_key_defaults_to_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLEANVOICE_API_KEY", CANARY)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert read_api_key(key_config(tmp_path)) == CANARY


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_key_file(tmp_path: Path) -> None:
    path = key_file(tmp_path, CANARY, 0o000)
    found = key_problem(key_config(tmp_path, "api_key"), {})
    assert found.message == f"cannot read the key file {path}: Permission denied"


def test_read_api_key_is_still_importable_from_config() -> None:
    assert config_module.read_api_key is read_api_key
