"""``cvsyncd show JOB``: everything known about one job, as text or JSON."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any, TextIO

from cvsyncd.cli.common import (
    EXIT_OK,
    add_json_option,
    existing_store,
    load,
    require,
    say,
    setup,
    write_json,
)
from cvsyncd.errors import CvsyncdError


def arguments(parser: argparse.ArgumentParser, name: str) -> None:
    setup(parser, run)
    parser.add_argument("job", type=int, metavar="JOB", help="a job id")
    add_json_option(parser)


def run(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd.pipeline.actions import describe_job

    config = load(args)
    with existing_store(config, verify=False) as store:
        described = describe_job(config, require(store, config), args.job)
    if described is None:
        raise CvsyncdError(f"there is no job {args.job} (`cvsyncd jobs` lists them)")
    if args.json:
        return write_json(described, out)
    print_job(described, out)
    return EXIT_OK


def print_job(described: Mapping[str, Any], out: TextIO) -> None:
    """``cvsyncd show`` as text: no JSON, nothing that is not known."""
    say(out, f"job {described['id']}: {described['name']} — {described['state']}")
    rows: list[tuple[str, str]] = [("folder", described["folder"])]
    options = ", ".join(f"{k} = {_toml(v)}" for k, v in described["options"].items())
    preset = described["facts"].get("preset")
    rows.append(("preset", f"{preset or 'inline'}" + (f" ({options})" if options else "")))
    for item in described["inputs"]:
        rows.append(
            ("input", f"{item['path']} ({_size(item['size'])}, sha256 {item['sha256'][:12]}…)")
        )
    for key, label in (
        ("edit_id", "edit"),
        ("created_at", "taken"),
        ("submitted_at", "submitted"),
        ("finished_at", "finished"),
        ("next_attempt_at", "next try"),
        ("disposed_to", "input moved to"),
        ("error", "why"),
    ):
        if described.get(key):
            rows.append((label, str(described[key])))
    if described.get("attempts"):
        rows.append(("attempts", str(described["attempts"])))
    where = described["facts"].get("input_at")
    if where and described["state"] == "failed":
        rows.append(("input is at", where))
    for output in described["outputs"]:
        if output.get("written") and not output.get("skip"):
            rows.append(("output", output["path"]))
    if described.get("statistics"):
        stats = ", ".join(
            f"{k.lower().replace('_', ' ')} {v}" for k, v in described["statistics"].items()
        )
        rows.append(("edits made", stats))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        say(out, f"{label + ':':<{width + 1}} {value}")
    say(out, "history:")
    for event in described["history"]:
        say(out, f"  {event['at']}  {event['state']:<15} {event['message'] or ''}".rstrip())


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def _size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB"):
        if value < 1000:
            return f"{value:.0f} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
