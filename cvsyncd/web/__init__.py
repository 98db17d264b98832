"""The dashboard, ``/healthz`` and ``/metrics``: served inside the daemon when the config
has a ``[web]`` section.

::

    web/
    ├── __init__.py   what the dashboard needs before it starts: its packages, its password
    ├── server.py     the listening socket and uvicorn's server, in the daemon's own loop
    ├── app.py        the routes: pages, actions, health, metrics, output downloads
    ├── auth.py       sessions, CSRF tokens, the login and its throttle, the Host check
    ├── views.py      what each page shows, as data read from the store
    ├── metrics.py    the Prometheus collector over the daemon's counters and the store
    ├── templates/    Jinja2 pages (autoescaped); static/: the one stylesheet and script
    └── (tests: tests/unit/web/, tests/e2e/test_web.py, tests/e2e/test_browser.py)

Only the daemon imports the modules that need the ``web`` extra (starlette, uvicorn,
jinja2, python-multipart, prometheus-client); this module needs none of them, so that
``cvsyncd check`` and ``run`` can say plainly what to install.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from cvsyncd.config import Config
from cvsyncd.errors import ConfigError, Problem

# import name → the package that provides it
REQUIRED = {
    "starlette": "starlette",
    "uvicorn": "uvicorn",
    "jinja2": "jinja2",
    "multipart": "python-multipart",
    "prometheus_client": "prometheus-client",
}
INSTALL_HINT = "pip install 'cvsyncd[web]'"
MIN_PASSWORD = 8


def missing_packages() -> list[str]:
    """The packages of the ``web`` extra that are not installed."""
    return [package for name, package in REQUIRED.items() if importlib.util.find_spec(name) is None]


def web_problems(config: Config) -> list[Problem]:
    """What stops the dashboard of ``config`` from starting (nothing without ``[web]``):
    missing packages, an unreadable or unsafe password file."""
    if config.web is None:
        return []
    file = str(config.path)
    problems = []
    missing = missing_packages()
    if missing:
        problems.append(
            Problem(
                file,
                "web",
                f"the dashboard needs packages that are not installed: {', '.join(missing)}",
                f"{INSTALL_HINT} in cvsyncd's environment, or remove the [web] section",
            )
        )
    if config.web.password_file is not None:
        try:
            read_password(config.web.password_file, file)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return problems


def read_password(path: Path, config_file: str = "") -> str:
    """The dashboard's password: the file's text without surrounding whitespace, from a
    file only its owner may read (the rule of the API key file). Raise ConfigError (never
    with the password in it) if it cannot be used."""
    where, valid = "web.password_file", f"a file of mode 0600 holding {MIN_PASSWORD}+ characters"
    file = config_file or str(path)
    try:
        with open(path, "rb") as stream:
            mode = os.fstat(stream.fileno()).st_mode
            if mode & 0o044:
                message = (
                    f"the password file {path} can be read by other users "
                    f"(mode {mode & 0o777:04o}), so it is not used"
                )
                raise ConfigError([Problem(file, where, message, f"chmod 600 {path}")])
            content = stream.read(4096)
    except OSError as error:
        message = f"cannot read the password file {path}: {error.strerror}"
        raise ConfigError([Problem(file, where, message, valid)]) from None
    try:
        password = content.decode("utf-8").strip()
    except UnicodeDecodeError:
        password = ""
    if len(password) < MIN_PASSWORD:
        message = f"the password file {path} holds no password of {MIN_PASSWORD} characters or more"
        raise ConfigError([Problem(file, where, message, valid)])
    return password
