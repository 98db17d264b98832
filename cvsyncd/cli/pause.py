"""``cvsyncd pause`` and ``cvsyncd resume``: hold back new work, and let it go again."""

from __future__ import annotations

import argparse
from typing import TextIO

from cvsyncd.cli.common import load, report, setup

FOLDER_HELP = "a folder's name or inbox (default: all)"


def arguments(parser: argparse.ArgumentParser, name: str) -> None:
    if name == "pause":
        setup(parser, run_pause)
        parser.add_argument("folder", nargs="?", help=FOLDER_HELP)
        parser.add_argument("--reason", help="a note shown by cvsyncd status")
    else:  # resume
        setup(parser, run_resume)
        parser.add_argument("folder", nargs="?", help=FOLDER_HELP)


def run_pause(args: argparse.Namespace, out: TextIO) -> int:
    return _hold(args, out, resume=False)


def run_resume(args: argparse.Namespace, out: TextIO) -> int:
    return _hold(args, out, resume=True)


def _hold(args: argparse.Namespace, out: TextIO, *, resume: bool) -> int:
    from cvsyncd.daemon.stores import open_store
    from cvsyncd.jobs import wake_daemon
    from cvsyncd.pipeline.actions import hold

    config = load(args)
    store = open_store(config)
    try:
        outcome = hold(config, store, args.folder, getattr(args, "reason", None), resume=resume)
    finally:
        store.close()
    wake_daemon(config.daemon.state_dir)
    return report([outcome], out, "")
