"""``cvsyncd init``: write a commented starter config, asking when in a terminal."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from cvsyncd.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    default_config_path,
    setup,
)
from cvsyncd.errors import CvsyncdError, UsageError


def arguments(parser: argparse.ArgumentParser, name: str) -> None:
    setup(parser, run)
    parser.add_argument("--inbox", help="the folder recordings are dropped into")
    parser.add_argument("--outbox", help="the folder results go to")
    parser.add_argument("--preset", help="a starter preset: podcast, interview or noise-only")
    parser.add_argument(
        "--after", choices=["keep", "move", "delete"], help="what happens to a recording once done"
    )
    parser.add_argument("--api-key-file", help="a file (mode 0600) holding the API key")
    parser.add_argument(
        "--web",
        metavar="HOST:PORT",
        help="serve the dashboard there ([web] listen, e.g. 127.0.0.1:8750); asked in a terminal",
    )
    parser.add_argument(
        "--web-password-file",
        help="the dashboard's password file ([web] password_file; needed when --web is not "
        "on this machine)",
    )
    parser.add_argument("--state-dir", help="where the job state lives ([daemon] state_dir)")
    parser.add_argument(
        "--yes", action="store_true", help="write to a system path (such as /etc) without asking"
    )


def run(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd.config.starter import STARTERS, ask, ask_dashboard, starter_config, write_starter
    from cvsyncd.web import missing_packages

    path = Path(os.path.abspath(args.config or default_config_path()))
    given = {
        k: v
        for k, v in (
            ("inbox", args.inbox),
            ("outbox", args.outbox),
            ("preset", args.preset),
            ("after", args.after),
        )
        if v
    }
    interactive = sys.stdin.isatty()
    if path.exists():
        raise CvsyncdError(
            f"{path} already exists; cvsyncd init never overwrites a config file "
            "(move it aside, or give another path with -c)"
        )
    if not interactive and "inbox" not in given:
        raise UsageError(
            "init is not in a terminal, so nothing can be asked: give at least "
            "--inbox (and --outbox, --preset, --after)"
        )
    print(f"cvsyncd init writes a new config file: {path}", file=out, flush=True)
    if is_system_path(path) and not args.yes:
        if not interactive:
            raise UsageError(
                f"{path} is outside your home and working folders (a system path); "
                "give --yes to write there, or -c PATH for another place"
            )
        answer = input(f"{path} is a system path. Write it there? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("nothing written", file=out)
            return EXIT_FAILURE
    web_listen = args.web
    if interactive and len(given) < 4:
        answers = ask(input, given)
        if web_listen is None:
            web_listen = ask_dashboard(input, default=not missing_packages())
    elif "inbox" in given:
        preset = given.get("preset", "podcast")
        if preset not in STARTERS:
            raise UsageError(f"--preset must be one of {', '.join(STARTERS)}")
        answers = {
            "inbox": given["inbox"],
            "outbox": given.get("outbox") or str(Path(given["inbox"]).parent / "outbox"),
            "preset_name": preset,
            "preset_options": dict(STARTERS[preset].options),
            "after": given.get("after", "keep"),
        }
    else:  # pragma: no cover - refused above
        raise UsageError("give --inbox")
    text = starter_config(
        **answers,
        api_key_file=args.api_key_file,
        web_listen=web_listen,
        state_dir=args.state_dir,
        web_password_file=args.web_password_file,
    )
    write_starter(path, text)
    print(
        f"wrote {path} (mode 0600). Next: put your API key where it says, then run "
        f"`cvsyncd check -c {path}`.",
        file=out,
    )
    return EXIT_OK


def is_system_path(path: Path, env: Mapping[str, str] | None = None) -> bool:
    """Whether ``path`` lies outside the user's home and the working folder (``/etc`` …)."""
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    places = [Path.cwd(), home]
    return not any(path.is_relative_to(place) for place in places if str(place) != "/")
