"""``cvsyncd retry``: queue failed, needs_attention or duplicate jobs again."""

from __future__ import annotations

import argparse
from typing import TextIO

from cvsyncd.cli.common import existing_store, load, report, require, setup
from cvsyncd.errors import UsageError
from cvsyncd.jobs import JobState


def arguments(parser: argparse.ArgumentParser, name: str) -> None:
    setup(parser, run)
    parser.add_argument("jobs", nargs="*", type=int, metavar="JOB", help="job ids")
    parser.add_argument("--failed", action="store_true", help="all failed jobs")
    parser.add_argument(
        "--needs-attention",
        action="store_true",
        help="all needs_attention jobs (may bill twice if Cleanvoice did create their first edit)",
    )


def run(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd.jobs import wake_daemon
    from cvsyncd.pipeline.actions import retry_jobs

    states = [JobState.FAILED] * args.failed + [JobState.NEEDS_ATTENTION] * args.needs_attention
    if not args.jobs and not states:
        raise UsageError("retry needs job ids, or --failed / --needs-attention")
    config = load(args)
    with existing_store(config) as store:
        outcomes = retry_jobs(config, require(store, config), args.jobs, states)
    wake_daemon(config.daemon.state_dir)
    return report(outcomes, out, "nothing to retry")
