"""The [store] section: the shared PostgreSQL store's URL, password and site."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cvsyncd.daemon.stores import shared_store
from cvsyncd.errors import StoreError
from tests.unit.config.test_loading import FOLDER, load, problem

URL = "postgresql://cvsyncd@db.lan:5432/cvsyncd"


def test_without_a_store_section_the_state_is_the_sqlite_file(tmp_path: Path) -> None:
    config = load(tmp_path, FOLDER)
    assert config.store is None and shared_store(config) is None


def test_a_store_section_names_the_database_and_the_site(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret-pw\n")
    (tmp_path / "pw").chmod(0o600)
    text = f'[store]\nurl = "{URL}"\npassword_file = "pw"\nsite = "studio-b"\n' + FOLDER
    config = load(tmp_path, text)
    assert config.store is not None
    assert (config.store.url, config.store.site) == (URL, "studio-b")
    assert config.store.password_file == tmp_path / "pw"
    shared = shared_store(config)
    assert shared is not None and shared.password == "s3cret-pw"
    assert "s3cret-pw" not in repr(shared)


def test_the_site_defaults_to_the_host_name(tmp_path: Path) -> None:
    config = load(tmp_path, f'[store]\nurl = "{URL}"\n' + FOLDER)
    assert config.store is not None
    expected = socket.gethostname()[:63]
    assert config.store.site == expected or config.store.site.replace("-", "") in expected


def test_a_password_in_the_url_is_refused_and_never_repeated(tmp_path: Path) -> None:
    text = '[store]\nurl = "postgresql://cvsyncd:hunter2-pw@db.lan/cvsyncd"\n' + FOLDER
    found = problem(tmp_path, text, "store.url")
    assert "password_file" in str(found) and "hunter2-pw" not in str(found)


@pytest.mark.parametrize(
    ("text", "key", "says"),
    [
        ('url = "mysql://db/x"', "store.url", "postgresql://"),
        ('url = "postgresql://db.lan"', "store.url", "needs a host and a database"),
        ('url = "postgresql://db.lan:99999/x"', "store.url", "is not a URL"),
        ('site = "a b"', "store.site", "short name"),
        ('site = "x"', "store.url", "missing"),
    ],
)
def test_bad_store_settings_are_named(tmp_path: Path, text: str, key: str, says: str) -> None:
    assert says in str(problem(tmp_path, f"[store]\n{text}\n" + FOLDER, key))


def test_an_unreadable_password_file_is_named(tmp_path: Path) -> None:
    config = load(tmp_path, f'[store]\nurl = "{URL}"\npassword_file = "missing"\n' + FOLDER)
    with pytest.raises(StoreError, match=r"password file .*missing"):
        shared_store(config)


def test_a_password_file_others_can_read_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret-pw\n")
    (tmp_path / "pw").chmod(0o644)
    config = load(tmp_path, f'[store]\nurl = "{URL}"\npassword_file = "pw"\n' + FOLDER)
    with pytest.raises(StoreError, match="chmod 600") as info:
        shared_store(config)
    assert "s3cret-pw" not in str(info.value)
