"""``cvsyncd status``: what the daemon is doing, what sets the pace, what needs you."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any, TextIO

from cvsyncd.cli.common import (
    EXIT_OK,
    add_json_option,
    existing_store,
    load,
    say,
    setup,
    write_json,
)


def arguments(parser: argparse.ArgumentParser, name: str) -> None:
    setup(parser, run)
    add_json_option(parser)
    parser.add_argument("--all", action="store_true", help="list every job too")


def run(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd.pipeline.report import status_report

    config = load(args)
    with existing_store(config, verify=False) as store:
        report = status_report(config, store, every_job=args.all)
    if args.json:
        return write_json(report, out)
    print_status(report, out)
    return EXIT_OK


def print_status(report: Mapping[str, Any], out: TextIO) -> None:
    """``cvsyncd status`` as text."""
    if report["daemon_pid"]:
        running = f"running (pid {report['daemon_pid']})"
    elif report["process_pid"]:
        running = f"not running; a `cvsyncd process` run (pid {report['process_pid']}) is working"
    else:
        running = "not running"
    say(out, f"daemon:  {running}")
    say(out, f"config:  {report['config']}")
    say(out, f"state:   {report['state_dir']}")
    if report["paused"]:
        say(out, f"PAUSED:  {report['paused']}")
    for name, reason in report["held"].items():
        say(out, f"PAUSED by the operator ({name}): {reason}")
    for name, reason in report["folders_paused"].items():
        say(out, f"folder {name} paused: {reason}")
    say(out, f"jobs:    {counted(report['counts']) or 'none yet'}")
    if len(report["folders"]) > 1:
        width = max(len(name) for name in report["folders"])
        for name, per in report["folders"].items():
            say(out, f"  {name:<{width}}  {counted(per)}")
    if report["pace"]:
        _print_pace(report["pace"], out)
    if report["active"]:
        say(out, "in progress:")
        for job in report["active"]:
            say(out, f"  #{job['id']:<5} {job['state']:<11} {job['name']}{progress_words(job)}")
        if report["active_more"]:
            say(out, f"  … and {report['active_more']} more (cvsyncd status --all)")
    if report["need_you"]:
        say(out, "needs you:")
        for job in report["need_you"]:
            say(out, f"  #{job['id']:<5} {job['state']:<15} {job['name']}")
            if job["error"]:
                say(out, f"         {job['error']}")
        if report["need_you_more"]:
            say(out, f"  … and {report['need_you_more']} more (cvsyncd jobs --state failed …)")
    if report.get("held_jobs"):
        say(out, "held (nothing uploaded; cvsyncd release JOB… | --folder F | --all):")
        for group in report["held_jobs"]:
            say(out, f"  {group['words']}")
        for job in report["held_list"]:
            hold = job.get("hold") or {}
            needs = hold.get("needs_hours")
            size = f"  ({needs * 60:.1f} min)" if isinstance(needs, int | float) else ""
            say(out, f"  #{job['id']:<5} {hold.get('kind', ''):<16} {job['name']}{size}")
        if report["held_more"]:
            say(out, f"  … and {report['held_more']} more (cvsyncd jobs --state held)")
    if report["not_taken"]:
        say(out, "not taken (fix these and they are taken):")
        for entry in report["not_taken"]:
            say(out, f"  {entry['path']}: {entry['reason']}")
    if report.get("jobs"):
        say(out, "every job:")
        for job in report["jobs"]:
            say(out, f"  #{job['id']:<5} {job['state']:<15} {job['name']}")


def _print_pace(pace: Mapping[str, Any], out: TextIO) -> None:
    uploads, edits = pace["uploads"], pace["edits"]
    say(
        out,
        f"pace:    {uploads['running']} of {uploads['limit']} uploads, "
        f"{edits['at_cleanvoice']} of {edits['limit']} edits at Cleanvoice; the API's request "
        f"budget allows {pace['recordings_per_minute']} recordings a minute at most",
    )
    for limit in pace["limits_now"]:
        say(out, f"         {limit}")


def progress_words(job: Mapping[str, Any]) -> str:
    """How far a job in progress is, in a few words (after two spaces), or ""."""
    p = job.get("progress") or {}
    parts = []
    if "uploaded" in p and p.get("size"):
        parts.append(f"{100 * p['uploaded'] // p['size']}% uploaded")
    elif p.get("status"):
        pct = f" {p['percent']:g}%" if p.get("percent") is not None else ""
        parts.append(f"{p['status']}{pct}")
    if job.get("expected_done_at"):
        parts.append(f"expected done {job['expected_done_at']}")
    if job.get("next_check_at") and job["state"] == "processing":
        parts.append(f"next check {job['next_check_at']}")
    if job.get("error"):
        parts.append(f"will try again: {job['error']}")
    return "  " + ", ".join(parts) if parts else ""


def counted(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {state.replace('_', ' ')}" for state, n in counts.items())
