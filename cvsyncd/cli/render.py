"""``cvsyncd render JOB…``: write done jobs' documents again from their stored results."""

from __future__ import annotations

import argparse
from typing import TextIO

from cvsyncd.cli.common import Subcommands, add_command, existing_store, load, report, require


def register(sub: Subcommands) -> None:
    parser = add_command(
        sub,
        "render",
        "write done jobs' transcripts, summaries and marker files "
        "again from their stored results (after changing formats or speaker "
        "names); no API call",
        run,
    )
    parser.add_argument("jobs", nargs="+", type=int, metavar="JOB", help="job ids")


def run(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd.pipeline.actions import render_jobs

    config = load(args)
    with existing_store(config) as store:
        outcomes = render_jobs(config, require(store, config), args.jobs)
    return report(outcomes, out, "nothing to render")
