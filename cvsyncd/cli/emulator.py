"""``cvsyncd emulator``: a local Cleanvoice API, for trying cvsyncd and for the tests."""

from __future__ import annotations

import argparse
from typing import TextIO

from cvsyncd.cli.common import Subcommands, add_command


def register(sub: Subcommands) -> None:
    from cvsyncd.emulator import add_arguments

    parser = add_command(
        sub,
        "emulator",
        "serve a local Cleanvoice API emulator (for trying cvsyncd and for tests)",
        run,
        config=False,
    )
    add_arguments(parser)


def run(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd.emulator import run_from_args

    return run_from_args(args, out)
