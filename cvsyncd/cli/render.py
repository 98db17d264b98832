"""``cvsyncd render JOB…``: write done jobs' documents again from their stored results."""

from __future__ import annotations

import argparse
from typing import TextIO

from cvsyncd.cli.common import existing_store, load, report, require, setup


def arguments(parser: argparse.ArgumentParser, name: str) -> None:
    setup(parser, run)
    parser.add_argument("jobs", nargs="+", type=int, metavar="JOB", help="job ids")


def run(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd.pipeline.actions import render_jobs

    config = load(args)
    with existing_store(config) as store:
        outcomes = render_jobs(config, require(store, config), args.jobs)
    return report(outcomes, out, "nothing to render")
