"""``cvsyncd jobs``: one line per job, newest first; filtered and paged for scripts and
the dashboard. The listing is streamed: 100,000 jobs take well under a second, in flat
memory."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import TextIO

from cvsyncd.cli.common import EXIT_OK, add_json_option, existing_store, load, setup
from cvsyncd.errors import UsageError
from cvsyncd.jobs import JobState, Listing


def arguments(parser: argparse.ArgumentParser, name: str) -> None:
    setup(parser, run)
    parser.add_argument(
        "--state",
        choices=[s.value for s in JobState],
        action="append",
        help="only jobs in this state (may be given more than once)",
    )
    parser.add_argument("--folder", help="only the jobs of this folder (its name or inbox)")
    parser.add_argument("--limit", type=int, metavar="N", help="at most N jobs")
    parser.add_argument(
        "--before", type=int, metavar="JOB", help="only jobs older than this one (the next page)"
    )
    add_json_option(parser)


def run(args: argparse.Namespace, out: TextIO) -> int:
    config = load(args)
    folders: tuple[str, ...] = ()
    if args.folder is not None:
        found = [f for f in config.folders if args.folder in (f.name, str(f.inbox))]
        if not found:
            names = ", ".join(f.name for f in config.folders)
            raise UsageError(f"there is no folder {args.folder!r} (folders: {names})")
        folders = tuple(f.key for f in found)
    if args.limit is not None and args.limit < 0:
        raise UsageError("--limit must be 0 or more")
    listing = Listing(
        states=tuple(JobState(s) for s in args.state or ()),
        folders=folders,
        before=args.before,
        limit=args.limit,
    )
    with existing_store(config, verify=False) as store:
        if args.json:
            write_array(store.summaries_json(listing) if store else iter(()), out)
            return EXIT_OK
        shown = 0
        for job_id, state, job_name, edit_id, error in store.lines(listing) if store else ():
            extra = f"  edit {edit_id}" if edit_id else ""
            out.write(f"#{job_id:<5} {state:<15} {job_name}{extra}\n")
            if error:
                out.write(f"       {error}\n")
            shown += 1
    if not shown:
        print("no jobs", file=out)
    return EXIT_OK


def write_array(items: Iterator[str], out: TextIO) -> None:
    """A JSON array, one element per line, written as the elements come."""
    out.write("[")
    separator = "\n"
    for item in items:
        out.write(separator)
        out.write(item)
        separator = ",\n"
    out.write("\n]\n")
