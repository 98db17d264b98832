"""The ``cvsyncd`` command line: the parser built from every command's module, and the one
place where errors become messages and exit codes."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import TextIO

from cvsyncd import __version__
from cvsyncd.cli.common import EXIT_FAILURE, EXIT_USAGE, Parser, count
from cvsyncd.errors import ConfigError, CvsyncdError, UsageError

# command → (its module in cvsyncd/cli/, its help), in the order `cvsyncd --help` lists
# them. A command's module is imported only when that command runs (or shows its help):
# `cvsyncd --version` and `cvsyncd status` do not pay for the daemon's imports.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "demo",
        "try cvsyncd in one command: the emulator, a folder pair and a sample recording, "
        "all in ./cvsyncd-demo",
    ),
    "init": ("init", "write a commented starter config (asks when run in a terminal)"),
    "run": ("run", "run the daemon in the foreground (SIGTERM/SIGINT stop it)"),
    "check": ("check", "check the config, the folders, the state directory and the API key"),
    "process": (
        "process",
        "process files once, in the foreground, and exit (for scripts and cron): 0 when "
        "all are done, 1 otherwise",
    ),
    "status": (
        "status",
        "a summary: jobs per state and folder, what sets the pace, what needs you",
    ),
    "health": (
        "health",
        "exit 0 if the daemon runs and its loops turn, 1 otherwise (container health checks)",
    ),
    "jobs": ("jobs", "list jobs"),
    "retry": (
        "retry",
        "queue failed, needs_attention or duplicate jobs again (submits them anew, asking "
        "nothing further)",
    ),
    "estimate": (
        "estimate",
        "what would be taken from each folder (or the given paths) and what it comes to: "
        "lengths, hours, the caps, the balance; nothing is uploaded",
    ),
    "usage": (
        "usage",
        "hours of audio used by done jobs, by folder, day or month (for invoices); --json, --csv",
    ),
    "release": (
        "release",
        "queue held jobs now (a held backlog, or recordings a spend cap held); a released "
        "job is not held again by what held it",
    ),
    "forget": ("forget", "forget finished jobs, so the same input is taken again"),
    "show": ("show", "everything known about a job"),
    "render": (
        "render",
        "write done jobs' transcripts, summaries and marker files again from their stored "
        "results (after changing formats or speaker names); no API call",
    ),
    "pause": (
        "pause",
        "hold back new uploads and submissions (of one folder, or all); a running daemon "
        "obeys within seconds",
    ),
    "resume": ("pause", "let a paused folder (or all) take new work again"),
    "account": ("account", "show the Cleanvoice account's credit balance"),
    "emulator": (
        "emulator",
        "serve a local Cleanvoice API emulator (for trying cvsyncd and for tests)",
    ),
}
DAEMON_COMMANDS = ("run", "process", "emulator", "demo")  # they set up their own logging
# they read the state database; they import no structlog
READERS = ("status", "jobs", "show", "usage", "health")


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser, with the arguments of the command named in ``argv`` (if any)."""
    parser = Parser(
        prog="cvsyncd",
        description="Watch inbox folders and clean every new recording with Cleanvoice AI.",
    )
    parser.add_argument("--version", action="version", version=f"cvsyncd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            importlib.import_module(f"cvsyncd.cli.{module}").arguments(command, name)
    return parser


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None) -> int:
    """Run the command line; return the exit code."""
    out = stdout or sys.stdout
    try:
        arguments = sys.argv[1:] if argv is None else list(argv)
        args = build_parser(arguments).parse_args(arguments)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command not in DAEMON_COMMANDS:
        _quiet_logs(structured=args.command not in READERS)
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


def _quiet_logs(*, structured: bool) -> None:
    """Whatever a library logs goes to stderr, warnings and worse only. The commands that
    only read the state database log nothing of their own: they skip setting up structlog
    (the logging stack is most of their start-up time)."""
    if structured:
        from cvsyncd.daemon import logs

        logs.configure("warning", sys.stderr, journal=False)
    else:
        import logging

        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)


def main_entry() -> None:
    code = main()
    if "cvsyncd.aio" in sys.modules:  # a command that ran file work in threads
        from cvsyncd.aio import exit_now_if_stuck

        exit_now_if_stuck(code)
    sys.exit(code)
