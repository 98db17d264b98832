"""The ``cvsyncd`` command (being written)."""

import sys


def main(argv: list[str] | None = None) -> int:
    return 0


def main_entry() -> None:
    sys.exit(main())
