"""``cvsyncd process FILE…``: process files once, in the foreground, and exit."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from cvsyncd.cli.common import EXIT_FAILURE, EXIT_OK, load_to_work, setup
from cvsyncd.cli.run import LOG_LEVELS
from cvsyncd.config import read_api_key
from cvsyncd.jobs import JobState
from cvsyncd.redact import register_secret


def arguments(parser: argparse.ArgumentParser, name: str) -> None:
    setup(parser, run)
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument("--preset", help="a preset of the config to use instead of the folder's")
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, default="warning", help="log level (default: warning)"
    )


def run(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd import aio
    from cvsyncd.daemon import logs
    from cvsyncd.daemon.oneshot import process_files

    config = load_to_work(args)
    api_key = read_api_key(config)
    register_secret(api_key)
    logs.configure(args.log_level)

    def report(line: str) -> None:
        print(line, file=out, flush=True)

    jobs = aio.run(process_files(config, api_key, args.files, args.preset, report))
    finished = {JobState.DONE, JobState.DUPLICATE}
    return EXIT_OK if jobs and all(j.state in finished for j in jobs) else EXIT_FAILURE
