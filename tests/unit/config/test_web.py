"""The [web] section: where the dashboard listens, and when it needs a password."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cvsyncd.errors import ConfigError
from cvsyncd.web import read_password, web_problems
from tests.unit.config.test_loading import FOLDER, load, problem


def test_without_a_web_section_there_is_no_dashboard(tmp_path: Path) -> None:
    assert load(tmp_path, FOLDER).web is None


def test_an_empty_web_section_listens_on_loopback(tmp_path: Path) -> None:
    web = load(tmp_path, "[web]\n" + FOLDER).web
    assert web is not None and (web.host, web.port, web.password_file) == ("127.0.0.1", 8750, None)


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("[::1]:9000", "::1", 9000),
        ("localhost:8080", "localhost", 8080),
        ("127.0.0.2:1", "127.0.0.2", 1),
    ],
)
def test_listen_takes_ipv4_ipv6_and_names(
    tmp_path: Path, listen: str, host: str, port: int
) -> None:
    web = load(tmp_path, f'[web]\nlisten = "{listen}"\n' + FOLDER).web
    assert web is not None and (web.host, web.port) == (host, port)
    assert web.listen == listen


@pytest.mark.parametrize(
    ("listen", "says"),
    [
        ("8750", "has no :port"),
        ("::1:8750", "IPv6 address in brackets"),
        ("127.0.0.1:99999", "from 1 to 65535"),
        ("127.0.0.1:http", "from 1 to 65535"),
        (":8750", "no usable host"),
    ],
)
def test_a_bad_listen_says_why(tmp_path: Path, listen: str, says: str) -> None:
    found = problem(tmp_path, f'[web]\nlisten = "{listen}"\n' + FOLDER, "web.listen")
    assert says in found.message


def test_listening_off_loopback_needs_a_password_file(tmp_path: Path) -> None:
    found = problem(tmp_path, '[web]\nlisten = "0.0.0.0:8750"\n' + FOLDER, "web.password_file")
    assert "0.0.0.0:8750" in found.message and "needs a password" in found.message
    assert "password_file = " in found.valid and "chmod 600" in found.valid
    with_file = '[web]\nlisten = "[::]:8750"\npassword_file = "pw"\n' + FOLDER
    web = load(tmp_path, with_file).web
    assert web is not None and web.password_file == tmp_path / "pw"


def test_the_password_file_must_be_private_and_long_enough(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("correct horse battery\n")
    os.chmod(secret, 0o644)
    with pytest.raises(ConfigError) as caught:
        read_password(secret, "c.toml")
    [found] = caught.value.problems
    assert found.key == "web.password_file" and "other users" in found.message
    assert "correct horse" not in str(found)
    os.chmod(secret, 0o600)
    assert read_password(secret) == "correct horse battery"
    secret.write_text("short")
    with pytest.raises(ConfigError, match="8 characters"):
        read_password(secret)


def test_check_and_run_name_a_missing_password_file(tmp_path: Path) -> None:
    config = load(tmp_path, '[web]\nlisten = "0.0.0.0:8750"\npassword_file = "nope"\n' + FOLDER)
    [found] = web_problems(config)
    assert found.key == "web.password_file" and "cannot read" in found.message


def test_a_missing_package_of_the_web_extra_is_named_with_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cvsyncd.web

    config = load(tmp_path, "[web]\n" + FOLDER)
    assert web_problems(config) == []  # the extra is installed here
    monkeypatch.setitem(cvsyncd.web.REQUIRED, "cvsyncd_no_such_module", "no-such-package")
    [found] = web_problems(config)
    assert found.key == "web" and "no-such-package" in found.message
    assert "pip install 'cvsyncd[web]'" in found.valid
    assert web_problems(load(tmp_path, FOLDER)) == []  # no [web]: nothing needed
