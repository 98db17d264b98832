"""``cvsyncd health``: exit 0 when the daemon of a config is healthy, 1 otherwise — for a
container's HEALTHCHECK or a monitor that cannot reach ``/healthz``.

Healthy, seen from another process: a live daemon holds the state directory's lock, its
last health verdict (``health.json``, written by its watchdog task: loops turning, store
answering) is fresh and good, and the state database opens and answers here too. The same
rule as ``/healthz`` and systemd's watchdog (``daemon/health.py``).
"""

from __future__ import annotations

import argparse
import sqlite3
from typing import TextIO

from cvsyncd.cli.common import EXIT_FAILURE, EXIT_OK, load, setup
from cvsyncd.errors import StoreError


def arguments(parser: argparse.ArgumentParser, name: str) -> None:
    setup(parser, run)


def run(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd.daemon.health import read_verdict
    from cvsyncd.daemon.stores import open_existing
    from cvsyncd.jobs import lock_holder

    config = load(args)
    state_dir = config.daemon.state_dir
    holder = lock_holder(state_dir)
    pid = holder[0] if holder and holder[1] == "daemon" else None
    verdict = read_verdict(state_dir, pid)
    problems = list(verdict.problems)
    if verdict.ok:
        try:
            store = open_existing(config, verify=False)
            if store is None:
                problems.append(f"there is no state database in {state_dir}")
            else:
                try:
                    store.ping()
                finally:
                    store.close()
        except (StoreError, sqlite3.Error) as exc:
            problems.append(f"the state database cannot be used: {exc}")
    if problems:
        print(f"unhealthy: {'; '.join(problems)}", file=out)
        return EXIT_FAILURE
    print(f"ok: the daemon (pid {pid}) runs and its loops turn", file=out)
    return EXIT_OK
