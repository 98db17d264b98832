"""What every command shares: exit codes, the parser, finding and loading the config,
opening the store, and reporting outcomes."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from cvsyncd.errors import ConfigError, CvsyncdError

if TYPE_CHECKING:  # imported when used: `cvsyncd --version` must not pay for them
    from cvsyncd.config import Config
    from cvsyncd.jobs import Store
    from cvsyncd.pipeline.actions import Outcome

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
DEFAULT_CONFIGS = (Path("~/.config/cvsyncd/config.toml"), Path("/etc/cvsyncd/config.toml"))

Handler = Callable[[argparse.Namespace, TextIO], int]


def default_config_path(env: dict[str, str] | os._Environ[str] = os.environ) -> Path:
    """``$CVSYNCD_CONFIG``, else the user's config if it exists, else the system one."""
    if env.get("CVSYNCD_CONFIG"):
        return Path(env["CVSYNCD_CONFIG"])
    user = DEFAULT_CONFIGS[0].expanduser()
    return user if user.exists() else DEFAULT_CONFIGS[1]


class Parser(argparse.ArgumentParser):
    """argparse, with its usage errors worded and coded like every other cvsyncd error."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("cvsyncd").strip()
        hint = f"cvsyncd {command} --help" if command else "cvsyncd --help"
        self.exit(EXIT_USAGE, f"cvsyncd: {message} (see `{hint}`)\n")


def setup(parser: argparse.ArgumentParser, handler: Handler, *, config: bool = True) -> None:
    """Make ``parser`` run ``handler``; with ``config``, give it the ``-c`` option."""
    if config:
        parser.add_argument(
            "-c",
            "--config",
            type=Path,
            default=None,
            help="config file (default: $CVSYNCD_CONFIG, "
            "~/.config/cvsyncd/config.toml, /etc/cvsyncd/config.toml)",
        )
    parser.set_defaults(func=handler)


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def load(args: argparse.Namespace) -> Config:
    from cvsyncd.config import load_config

    return load_config(args.config or default_config_path())


def load_to_work(args: argparse.Namespace) -> Config:
    """The config, for a command that takes recordings: also checked on disk, where a
    link or a mount may make an outbox lead into an inbox (``inbox/places.py``)."""
    from cvsyncd.inbox.places import overlaps

    config = load(args)
    problems = overlaps(config)
    if problems:
        raise ConfigError(problems)
    return config


@contextlib.contextmanager
def existing_store(config: Config, *, verify: bool = True) -> Iterator[Store | None]:
    """The state database if there is one (None if there is none yet), closed after.
    ``verify=False``: a command that only reads skips the integrity check (the daemon
    runs it at every start, and `cvsyncd check` on demand)."""
    from cvsyncd.daemon.stores import open_existing

    store = open_existing(config, verify=verify)
    try:
        yield store
    finally:
        if store:
            store.close()


def require(store: Store | None, config: Config) -> Store:
    if store is None:
        raise CvsyncdError(f"there are no jobs yet: no state database in {config.daemon.state_dir}")
    return store


def write_json(value: Any, out: TextIO) -> int:
    json.dump(value, out, indent=2)
    out.write("\n")
    return EXIT_OK


def report(outcomes: Sequence[Outcome], out: TextIO, empty: str) -> int:
    """Each outcome's message (failures to stderr); exit 1 if any failed."""
    if not outcomes:
        print(empty, file=out)
    for outcome in outcomes:
        print(outcome.message, file=out if outcome.ok else sys.stderr)
    return EXIT_OK if all(o.ok for o in outcomes) else EXIT_FAILURE


def count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def say(out: TextIO, text: str) -> None:
    print(text, file=out)
