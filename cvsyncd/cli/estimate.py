"""``cvsyncd estimate``: what would be taken from each folder, and what it would cost.

Nothing is uploaded and no job is created: each recording is measured on this machine.
The account's balance is asked for when the API can be reached (and said so when not).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping
from pathlib import Path
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
from cvsyncd.errors import CvsyncdError

ACCOUNT_SECONDS = 15.0  # the most `estimate` waits for the balance


def arguments(parser: argparse.ArgumentParser, name: str) -> None:
    setup(parser, run)
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="recordings or folders to weigh (default: every folder's inbox)",
    )
    add_json_option(parser)
    parser.add_argument(
        "--offline", action="store_true", help="do not ask Cleanvoice for the account's balance"
    )


def run(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd.pipeline.estimate import estimate

    config = load(args)
    with existing_store(config, verify=False) as store:
        report = estimate(config, store, args.paths)
    report["balance"] = None if args.offline else asyncio.run(_balance(config))
    if args.json:
        return write_json(report, out)
    print_estimate(report, out)
    return EXIT_OK


async def _balance(config: Any) -> dict[str, Any]:
    """The account's balance, or why it is not known."""
    from cvsyncd.cleanvoice.answers import account_balance, balance_unit
    from cvsyncd.cli.account import fetch_account

    try:
        account = await asyncio.wait_for(fetch_account(config), ACCOUNT_SECONDS)
    except (CvsyncdError, OSError, TimeoutError) as exc:
        return {"known": False, "why": str(exc) or type(exc).__name__}
    balance = account_balance(account)
    if balance is None:
        return {"known": False, "why": "the account's answer gives no balance"}
    return {"known": True, "credit": balance, "unit": balance_unit(account)}


def length(seconds: float | None) -> str:
    if seconds is None:
        return "length unknown"
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def print_estimate(report: Mapping[str, Any], out: TextIO) -> None:
    """``cvsyncd estimate`` as text."""
    from cvsyncd.pipeline.spend import hours_text as hours

    for folder in report["folders"]:
        backlog = f" (backlog: {folder['backlog']})" if folder["backlog"] else ""
        say(out, f"folder {folder['folder']}: {folder['inbox']}{backlog}")
        for item in folder["recordings"]:
            fate = "" if item["would"] == "take" else f"  — {item['would']}"
            if item["problem"]:
                fate = f"  — not taken: {item['problem']}"
            say(out, f"  {length(item['seconds']):>14}  {item['name']}{fate}")
        if not folder["recordings"]:
            say(out, "  nothing new")
        take, hold, skip = folder["take"], folder["hold"], folder["skip"]
        parts = [f"would take {take['recordings']} ({hours(take['hours'])})"]
        if hold["recordings"]:
            parts.append(f"hold {hold['recordings']} ({hours(hold['hours'])}) until released")
        if skip["recordings"]:
            parts.append(f"skip {skip['recordings']}")
        if folder["already_jobs"]:
            parts.append(f"{folder['already_jobs']} already taken before")
        say(out, "  " + ", ".join(parts))
    total = report["total"]
    held = sum(f["hold"]["recordings"] for f in report["folders"])
    held_hours = sum(f["hold"]["hours"] for f in report["folders"])
    line = f"total:   {total['recordings']} recording(s), {hours(total['hours'])} to take"
    if held:
        line += f"; {held} ({hours(held_hours)}) held until released"
    say(out, line)
    for cap in report["caps"]:
        whose = f" of folder {cap['folder']}" if cap["folder"] else ""
        say(
            out,
            f"cap:     {cap['cap']}{whose} = {cap['hours']:g} h: {hours(cap['used'])} used, "
            f"{hours(cap['left'])} left until {cap['until']}",
        )
    allow = report["caps_allow"]
    if not report["caps"]:
        say(out, "caps:    none set ([budget] hours_per_day, hours_per_month)")
    elif allow["of"]:
        say(out, f"         the caps let {allow['recordings']} of the {allow['of']} go now")
    balance = report.get("balance")
    if balance is None:
        return
    if balance["known"]:
        say(out, f"balance: {balance['credit']:g} {balance['unit']}")
    else:
        say(out, f"balance: not known ({balance['why']})")
