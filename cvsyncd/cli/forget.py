"""``cvsyncd forget JOB…``: forget finished jobs, so the same input is taken again."""

from __future__ import annotations

import argparse
from typing import TextIO

from cvsyncd.cli.common import existing_store, load, report, require, setup


def arguments(parser: argparse.ArgumentParser, name: str) -> None:
    setup(parser, run)
    parser.add_argument("jobs", nargs="+", type=int, metavar="JOB", help="job ids")


def run(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd.jobs import wake_daemon
    from cvsyncd.pipeline.actions import forget_jobs

    config = load(args)
    with existing_store(config) as store:
        outcomes = forget_jobs(config, require(store, config), args.jobs)
    wake_daemon(config.daemon.state_dir)
    return report(outcomes, out, "nothing to forget")
