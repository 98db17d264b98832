"""The ``cvsyncd`` command line: the parser built from every command's module, and the one
place where errors become messages and exit codes."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import TextIO

from cvsyncd import __version__
from cvsyncd.cli import (
    account,
    check,
    emulator,
    forget,
    init,
    jobs,
    pause,
    process,
    render,
    retry,
    run,
    show,
    status,
)
from cvsyncd.cli.common import EXIT_FAILURE, EXIT_USAGE, Parser, count
from cvsyncd.errors import ConfigError, CvsyncdError, UsageError

# in the order `cvsyncd --help` lists them
COMMANDS = (init, run, check, process, status, jobs, retry, forget, show, render, pause, account)
DAEMON_COMMANDS = ("run", "process", "emulator")  # they set up their own logging


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="cvsyncd",
        description="Watch inbox folders and clean every new recording with Cleanvoice AI.",
    )
    parser.add_argument("--version", action="version", version=f"cvsyncd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in (*COMMANDS, emulator):
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None) -> int:
    """Run the command line; return the exit code."""
    out = stdout or sys.stdout
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command not in DAEMON_COMMANDS:
        _quiet_logs()  # whatever a library logs goes to stderr, warnings and worse only
    debug = bool(os.environ.get("CVSYNCD_DEBUG"))
    try:
        return int(args.func(args, out))
    except ConfigError as exc:
        print(f"cvsyncd: the config has {count(len(exc.problems), 'problem')}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"cvsyncd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CvsyncdError as exc:
        if debug:
            traceback.print_exc()
        print(f"cvsyncd: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except EOFError:
        print(
            "cvsyncd: the input ended before an answer was given; nothing was done", file=sys.stderr
        )
        return EXIT_FAILURE
    except OSError as exc:
        if debug:
            traceback.print_exc()
        where = f": {exc.filename}" if exc.filename else ""
        print(f"cvsyncd: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as exc:  # a bug: say so plainly, and how to see more
        if debug:
            traceback.print_exc()
        print(
            f"cvsyncd: internal error ({type(exc).__name__}: {exc}); run again with "
            "CVSYNCD_DEBUG=1 to see where, and please report it",
            file=sys.stderr,
        )
        return EXIT_FAILURE


def _quiet_logs() -> None:
    from cvsyncd.daemon import logs

    logs.configure("warning", sys.stderr, journal=False)


def main_entry() -> None:
    from cvsyncd.aio import exit_now_if_stuck

    code = main()
    exit_now_if_stuck(code)
    sys.exit(code)
