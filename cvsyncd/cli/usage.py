"""``cvsyncd usage``: hours of audio used, by folder, day or month (for invoices)."""

from __future__ import annotations

import argparse
import csv
from collections.abc import Mapping
from typing import Any, TextIO

from cvsyncd.cli.common import EXIT_OK, existing_store, load, say, setup, write_json
from cvsyncd.errors import UsageError


def arguments(parser: argparse.ArgumentParser, name: str) -> None:
    setup(parser, run)
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--month", metavar="YYYY-MM", help="this month (default: the current one)")
    when.add_argument("--all-time", action="store_true", help="every month")
    parser.add_argument(
        "--by", choices=("folder", "day", "month"), default="folder", help="group by (folder)"
    )
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="machine-readable output")
    form.add_argument("--csv", action="store_true", help="CSV, one row per group")


def run(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd.pipeline.usage import usage_report

    config = load(args)
    try:
        with existing_store(config, verify=False) as store:
            report = usage_report(config, store, args.by, args.month, args.all_time)
    except ValueError:
        raise UsageError(f"--month {args.month!r} is not a month such as 2026-11") from None
    if args.json:
        return write_json(report, out)
    if args.csv:
        write_csv(report, out)
        return EXIT_OK
    print_usage(report, out)
    return EXIT_OK


def write_csv(report: Mapping[str, Any], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    by = report["by"]
    writer.writerow([by, "recordings", "hours", "unknown_length", "credits"])
    for row in report["rows"]:
        credits = "" if row["credits"] is None else f"{row['credits']:g}"
        writer.writerow(
            [row[by], row["recordings"], f"{row['hours']:.4f}", row["unknown_length"], credits]
        )


def print_usage(report: Mapping[str, Any], out: TextIO) -> None:
    """``cvsyncd usage`` as text: a table, and its total."""
    by = report["by"]
    period = "every month" if report["month"] == "all" else report["month"]
    say(out, f"usage in {period}, by {by} (done jobs; hours of audio as measured here)")
    if not report["rows"]:
        say(out, "  no job finished in that time")
        return
    width = max(len(by), *(len(str(r[by])) for r in report["rows"]), len("total"))
    say(out, f"  {by:<{width}}  {'recordings':>10}  {'hours':>9}  credits")
    for row in [*report["rows"], {**report["total"], by: "total"}]:
        credits = "" if row["credits"] is None else f"{row['credits']:g}"
        unknown = f"  ({row['unknown_length']} of unknown length)" if row["unknown_length"] else ""
        say(
            out,
            f"  {row[by]:<{width}}  {row['recordings']:>10}  {row['hours']:>9.3f}  "
            f"{credits}{unknown}",
        )
