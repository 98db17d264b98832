"""``cvsyncd release``: queue held jobs now (a backlog, or recordings a cap held)."""

from __future__ import annotations

import argparse
from typing import TextIO

from cvsyncd.cli.common import existing_store, load, report, require, setup
from cvsyncd.errors import UsageError


def arguments(parser: argparse.ArgumentParser, name: str) -> None:
    setup(parser, run)
    parser.add_argument("jobs", nargs="*", type=int, metavar="JOB", help="job ids")
    parser.add_argument(
        "--folder",
        action="append",
        default=[],
        metavar="F",
        help="every held job of this folder (its name or inbox; may be given again)",
    )
    parser.add_argument("--all", action="store_true", help="every held job")


def run(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd.jobs import wake_daemon
    from cvsyncd.pipeline.actions import release_jobs

    if not args.jobs and not args.folder and not args.all:
        raise UsageError("release needs job ids, --folder F or --all")
    config = load(args)
    with existing_store(config) as store:
        outcomes = release_jobs(config, require(store, config), args.jobs, args.folder, args.all)
    wake_daemon(config.daemon.state_dir)  # a running daemon looks at once
    return report(outcomes, out, "nothing is held")
