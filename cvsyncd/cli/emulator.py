"""``cvsyncd emulator``: a local Cleanvoice API, for trying cvsyncd and for the tests."""

from __future__ import annotations

import argparse
from typing import TextIO

from cvsyncd.cli.common import setup


def arguments(parser: argparse.ArgumentParser, name: str) -> None:
    from cvsyncd.emulator import add_arguments

    setup(parser, run, config=False)
    add_arguments(parser)


def run(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd.emulator import run_from_args

    return run_from_args(args, out)
