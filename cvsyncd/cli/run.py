"""``cvsyncd run``: the daemon, in the foreground (systemd, a container, a terminal)."""

from __future__ import annotations

import argparse
from typing import TextIO

from cvsyncd.cli.common import EXIT_OK, load_to_work, setup
from cvsyncd.config import read_api_key
from cvsyncd.errors import ConfigError
from cvsyncd.redact import register_secret

LOG_LEVELS = ["debug", "info", "warning", "error"]


def arguments(parser: argparse.ArgumentParser, name: str) -> None:
    setup(parser, run)
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="override [daemon] log_level")


def run(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd import aio
    from cvsyncd.daemon import logs
    from cvsyncd.daemon.lifecycle import Daemon

    config = load_to_work(args)
    if config.web is not None:
        from cvsyncd.web import web_problems

        problems = web_problems(config)
        if problems:
            raise ConfigError(problems)
    api_key = read_api_key(config)
    register_secret(api_key)
    logs.configure(args.log_level or config.daemon.log_level)
    aio.run(Daemon(config, api_key, args.log_level).run())
    return EXIT_OK
