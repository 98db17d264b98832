"""Finding the Cleanvoice API key: a systemd credential, a key file, or the environment.

:func:`read_api_key` is called when the key is needed (by the daemon and ``cvsyncd check``),
not while the config file is parsed. A key file must be private to its owner. The key
itself never appears in a message.

This module needs only a config's path and ``cleanvoice.api_key_file`` (see
:class:`KeySource`), so that :mod:`cvsyncd.config` can use its names without a cycle.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from cvsyncd.config.schema import Invalid
from cvsyncd.errors import ConfigError, Problem

CREDENTIAL_NAME = "cleanvoice_api_key"  # the file in $CREDENTIALS_DIRECTORY
API_KEY_VARIABLE = "CLEANVOICE_API_KEY"
MIN_KEY_LENGTH = 8  # shorter is no key; it could not be told apart from words in a log


class KeyFileSetting(Protocol):
    @property
    def api_key_file(self) -> Path | None: ...


class KeySource(Protocol):
    """What :func:`read_api_key` needs of a :class:`~cvsyncd.config.Config`."""

    @property
    def path(self) -> Path: ...

    @property
    def cleanvoice(self) -> KeyFileSetting: ...


def read_api_key(config: KeySource, env: Mapping[str, str] | None = None) -> str:
    """Return the Cleanvoice API key, whitespace stripped.

    Look in ``$CREDENTIALS_DIRECTORY/cleanvoice_api_key`` (systemd credentials), then in
    ``cleanvoice.api_key_file`` (refused if other users may read it), then in
    ``$CLEANVOICE_API_KEY``. Raise ConfigError if there is no usable key; the key itself is
    never part of a message.
    """
    env = os.environ if env is None else env
    file, where = str(config.path), "cleanvoice.api_key_file"
    credentials = env.get("CREDENTIALS_DIRECTORY")
    if credentials:
        credential = Path(credentials) / CREDENTIAL_NAME
        try:
            return read_key_file(credential, private=False)
        except FileNotFoundError:
            pass  # the unit passes other credentials, not this one
        except OSError as error:
            raise key_error(str(credential), "", f"cannot read it: {error.strerror}") from None
        except Invalid as invalid:
            raise key_error(str(credential), "", f"the systemd credential {invalid}") from None
    key_file = config.cleanvoice.api_key_file
    if key_file is not None:
        try:
            return read_key_file(key_file, private=True)
        except OSError as error:
            message = f"cannot read the key file {key_file}: {error.strerror}"
            raise key_error(file, where, message, "a file holding the key, mode 0600") from None
        except Invalid as invalid:
            message = f"the key file {key_file} {invalid}"
            raise key_error(file, where, message, invalid.valid) from None
    key = env.get(API_KEY_VARIABLE, "").strip()
    if key:
        try:
            check_key(key)
        except Invalid as invalid:
            raise key_error(file, "", f"${API_KEY_VARIABLE} {invalid}") from None
        return key
    raise key_error(
        file,
        "",
        "no Cleanvoice API key found",
        f"give it in one of three ways: a systemd credential named {CREDENTIAL_NAME} "
        f"(LoadCredential={CREDENTIAL_NAME}:/etc/cvsyncd/api_key); a file named by "
        f"cleanvoice.api_key_file, mode 0600; or the environment variable {API_KEY_VARIABLE}",
    )


def key_error(file: str, key: str, message: str, valid: str = "") -> ConfigError:
    return ConfigError([Problem(file, key, message, valid)])


def read_key_file(path: Path, *, private: bool) -> str:
    """Return the key held in ``path``. Raise Invalid if it is empty or malformed, or (when
    ``private``) if users other than its owner may read it; OSError if it cannot be read."""
    with open(path, "rb") as stream:
        mode = os.fstat(stream.fileno()).st_mode
        if private and mode & 0o044:
            raise Invalid(
                f"can be read by other users (mode {mode & 0o777:04o}), so it is not used",
                f"chmod 600 {path}",
            )
        content = stream.read()
    try:
        key = content.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise Invalid("is not UTF-8 text") from None
    check_key(key)
    return key


def check_key(key: str) -> None:
    """Raise Invalid (without the key) if ``key`` is empty or could not go in an HTTP header."""
    if not key:
        raise Invalid("is empty")
    if not all(33 <= ord(char) <= 126 for char in key):
        raise Invalid("holds spaces, line breaks or other characters an API key cannot have")
    if len(key) < MIN_KEY_LENGTH:
        raise Invalid(
            f"is only {len(key)} characters long; a Cleanvoice API key is much longer "
            "(copy the whole key from the dashboard)"
        )


def key_signature(config: KeySource, env: Mapping[str, str] | None = None) -> tuple[object, ...]:
    """A cheap fingerprint of where the key comes from: it changes when a key file does.

    The daemon compares it while paused for a refused key, to try a new key at once.
    """
    env = os.environ if env is None else env
    places = [config.cleanvoice.api_key_file]
    if env.get("CREDENTIALS_DIRECTORY"):
        places.insert(0, Path(env["CREDENTIALS_DIRECTORY"]) / CREDENTIAL_NAME)
    signature: list[object] = []
    for place in places:
        try:
            st = os.stat(place) if place is not None else None
        except OSError:
            st = None
        signature.append((st.st_ino, st.st_size, st.st_mtime_ns) if st else None)
    return tuple(signature)
