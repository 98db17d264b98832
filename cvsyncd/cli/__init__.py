"""The ``cvsyncd`` command: one module per command, named after it.

::

    cli/
    ├── main.py      the parser, and the one place errors become messages and exit codes
    ├── common.py    exit codes, finding the config, opening the store, reporting outcomes
    ├── init.py      cvsyncd init        ├── show.py     cvsyncd show
    ├── run.py       cvsyncd run         ├── retry.py    cvsyncd retry
    ├── check.py     cvsyncd check       ├── forget.py   cvsyncd forget
    ├── process.py   cvsyncd process     ├── render.py   cvsyncd render
    ├── status.py    cvsyncd status      ├── pause.py    cvsyncd pause / resume
    ├── jobs.py      cvsyncd jobs        ├── account.py  cvsyncd account
    ├── emulator.py  cvsyncd emulator    ├── release.py  cvsyncd release
    ├── estimate.py  cvsyncd estimate    ├── usage.py    cvsyncd usage
    ├── health.py    cvsyncd health      └── demo.py     cvsyncd demo

Exit codes: 0 success; 1 a runtime problem (the store, the API, a check that failed);
2 a usage or config error (nothing was done). Every error message starts with
``cvsyncd:`` and goes to stderr, as do the logs of every command; stdout holds only what
the command reports (and with ``--json``, JSON and nothing else). No traceback reaches a
user unless ``CVSYNCD_DEBUG=1``. Only this package prints or chooses exit codes.
"""

from cvsyncd.cli.main import main, main_entry

__all__ = ["main", "main_entry"]
