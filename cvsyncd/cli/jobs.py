"""``cvsyncd jobs``: one line per job, newest first."""

from __future__ import annotations

import argparse
from typing import TextIO

from cvsyncd.cli.common import (
    EXIT_OK,
    Subcommands,
    add_command,
    add_json_option,
    existing_store,
    load,
    write_json,
)
from cvsyncd.jobs import JobState


def register(sub: Subcommands) -> None:
    parser = add_command(sub, "jobs", "list jobs", run)
    parser.add_argument("--state", choices=[s.value for s in JobState], help="only this state")
    add_json_option(parser)


def run(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd.pipeline.report import job_summary

    config = load(args)
    states = [JobState(args.state)] if args.state else None
    with existing_store(config) as store:
        entries = [job_summary(job) for job in (store.jobs(states) if store else [])]
    if args.json:
        return write_json(entries, out)
    if not entries:
        print("no jobs", file=out)
    for e in entries:
        extra = f"  edit {e['edit_id']}" if e["edit_id"] else ""
        print(f"#{e['id']:<5} {e['state']:<15} {e['name']}{extra}", file=out)
        if e["error"]:
            print(f"       {e['error']}", file=out)
    return EXIT_OK
