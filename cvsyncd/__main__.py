"""``python -m cvsyncd`` is the same as the ``cvsyncd`` command."""

from cvsyncd.cli import main_entry

main_entry()
