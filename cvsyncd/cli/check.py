"""``cvsyncd check``: everything the daemon needs, verified before it is started.

Each check gives (ok, subject, detail): ok is True, False (failed: the detail says what
to do) or None (a warning: it works, but the detail says what may go wrong). Nothing here
changes the user's folders (a probe file is created and removed at once), and the state
directory and database are only looked at, never created or migrated.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import TextIO

from cvsyncd import fsinfo
from cvsyncd.cleanvoice.answers import account_balance, balance_unit
from cvsyncd.cli.common import EXIT_FAILURE, EXIT_OK, count, load, setup
from cvsyncd.config import UNCERTAIN_EXTENSIONS, Config, read_api_key
from cvsyncd.errors import AccountApiError, ApiError, ConfigError, StoreError
from cvsyncd.inbox.places import overlaps
from cvsyncd.jobs import Store, lock_holder
from cvsyncd.jobs.migrations import SCHEMA_VERSION
from cvsyncd.outbox.files import AtomicFile
from cvsyncd.redact import register_secret

Check = tuple[bool | None, str, str]


def arguments(parser: argparse.ArgumentParser, name: str) -> None:
    setup(parser, run)


def run(args: argparse.Namespace, out: TextIO) -> int:
    config = load(args)
    results = asyncio.run(run_checks(config))
    for ok, subject, detail in results:
        mark = "ok  " if ok else "warn" if ok is None else "FAIL"
        print(f"{mark}  {subject}{': ' + detail if detail else ''}", file=out)
    failed = sum(1 for ok, _, _ in results if ok is False)
    if failed:
        print(
            f"\n{count(failed, 'check')} failed; fix the lines marked FAIL and run "
            f"`cvsyncd check -c {config.path}` again.",
            file=out,
        )
        return EXIT_FAILURE
    print(f"\nAll good. Start the daemon with `cvsyncd run -c {config.path}`.", file=out)
    return EXIT_OK


def check_writable(path: Path) -> str | None:
    """Return why ``path`` cannot take our outputs, or None if it can."""
    if not path.exists():
        return f"does not exist; create it (mkdir -p '{path}')"
    if not path.is_dir():
        return "is not a folder"
    try:
        AtomicFile(path / ".cvsyncd-check").discard()
    except OSError as exc:
        return f"cannot write here ({exc.strerror}); fix its owner or permissions"
    return None


def check_folders(config: Config) -> list[Check]:
    results: list[Check] = []
    for folder in config.folders:
        label = f"folder {folder.name!r}"
        if not folder.inbox.is_dir():
            results.append(
                (
                    False,
                    f"{label} inbox {folder.inbox}",
                    f"does not exist or is not a folder; create it (mkdir -p "
                    f"'{folder.inbox}') or fix [[folders]] inbox",
                )
            )
        elif not os.access(folder.inbox, os.R_OK | os.X_OK):
            results.append((False, f"{label} inbox {folder.inbox}", "cannot be read"))
        else:
            kind = fsinfo.filesystem_type(folder.inbox)
            results.append((True, f"{label} inbox {folder.inbox}", f"readable ({kind})"))
        uncertain = sorted(set(folder.extensions) & UNCERTAIN_EXTENSIONS)
        if uncertain:
            names = ", ".join(f".{e}" for e in uncertain)
            results.append(
                (
                    None,
                    f"{label} extensions",
                    f"{names}: Cleanvoice's docs and SDKs disagree on whether these are "
                    "accepted; if Cleanvoice refuses one, that recording fails after its "
                    "upload. Convert such files to .m4a, .mp3, .wav or .flac to be safe",
                )
            )
        problem = check_writable(folder.outbox)
        results.append((problem is None, f"{label} outbox {folder.outbox}", problem or "writable"))
        places = [("failed_dir", folder.failed_dir)]
        if folder.after == "move":
            places.insert(0, ("done_dir", folder.done_dir))
        for name, place in places:
            parent = place if place.exists() else _existing_parent(place)
            problem = check_writable(parent)
            detail = "writable" if place.exists() else f"will be created in {parent}"
            results.append((problem is None, f"{label} {name} {place}", problem or detail))
    return results


def check_shared_store(config: Config) -> list[Check]:
    """The shared store ([store]): does it answer, and what schema does it hold."""
    from cvsyncd.daemon.stores import inspect, shared_store

    shared = shared_store(config)
    assert shared is not None
    subject = f"shared store {shared.shown_url} (site {shared.site})"
    try:
        facts = inspect(config)
    except ImportError:
        return [(False, subject, "needs psycopg: pip install 'cvsyncd[postgres]'")]
    except StoreError as exc:
        return [(False, subject, str(exc))]
    if facts is None:
        return [(True, subject, "answers; its schema is created at the first start")]
    version, jobs = facts
    return [(True, subject, f"answers, schema {version}, {jobs} jobs of all sites")]


def check_state(config: Config) -> list[Check]:
    """The state directory and database, looked at without creating or changing them."""
    if config.store is not None:
        try:
            return check_shared_store(config)
        except StoreError as exc:  # the password file
            return [(False, "shared store", str(exc))]
    state_dir = config.daemon.state_dir
    subject = f"state directory {state_dir}"
    if not state_dir.exists():
        parent = _existing_parent(state_dir)
        if not os.access(parent, os.W_OK | os.X_OK):
            return [
                (
                    False,
                    subject,
                    f"does not exist, and {parent} is not writable for this user: create it "
                    "(mkdir -p, owned by the daemon's user) or set [daemon] state_dir",
                )
            ]
        return [(True, subject, f"does not exist yet; the daemon creates it in {parent}")]
    fstype = fsinfo.filesystem_type(state_dir)
    if fsinfo.is_network_filesystem(fstype):
        return [
            (
                False,
                subject,
                f"is on a {fstype} filesystem, where SQLite is not reliable; set [daemon] "
                "state_dir to a folder on a local disk",
            )
        ]
    try:
        facts = Store.inspect(state_dir)
    except StoreError as exc:
        return [(False, subject, str(exc))]
    if facts is None:
        results: list[Check] = [(True, subject, "no database yet; created at the first start")]
    else:
        version, jobs = facts
        upgrade = (
            f"; its schema ({version}) is upgraded to {SCHEMA_VERSION} at the next start"
            if version < SCHEMA_VERSION
            else ""
        )
        results = [(True, subject, f"database ok, {jobs} jobs{upgrade}")]
    holder = lock_holder(state_dir)
    if holder is not None:
        pid, kind = holder
        what = "a `cvsyncd process` run" if kind == "process" else "a daemon"
        results.append(
            (
                None,
                "running",
                f"{what} already uses this state directory (pid {pid}): `cvsyncd status` "
                "shows what it does; a daemon reloads a changed config by itself (or on SIGHUP)",
            )
        )
    return results


async def check_api(config: Config) -> list[Check]:
    subject = f"Cleanvoice API at {config.cleanvoice.base_url}"
    try:
        key = read_api_key(config)
    except ConfigError as exc:  # the same words as `cvsyncd run` would print
        return [(False, "API key", "; ".join(str(p) for p in exc.problems))]
    register_secret(key)
    from cvsyncd.cleanvoice.client import client_for

    async with client_for(config.cleanvoice, key) as client:
        try:
            account = await client.account()
        except AccountApiError as exc:
            return [
                (True, "API key", "found"),
                (
                    False,
                    subject,
                    f"the key was refused ({exc.message}); check that it is "
                    "the key from your Cleanvoice dashboard",
                ),
            ]
        except ApiError as exc:
            return [
                (True, "API key", "found"),
                (False, subject, f"not reachable ({exc.message}); check base_url and the network"),
            ]
    balance = account_balance(account)
    credits = f"; credit balance {balance:g} {balance_unit(account)}" if balance is not None else ""
    return [(True, "API key", "found"), (True, subject, f"key accepted{credits}")]


def check_places(config: Config) -> list[Check]:
    """The folders compared on disk (links, mounts): no outbox may lead into an inbox."""
    return [
        (False, problem.key, f"{problem.message}; use {problem.valid}")
        for problem in overlaps(config)
    ]


def check_web(config: Config) -> list[Check]:
    """The dashboard's packages and password file, when ``[web]`` asks for a dashboard."""
    if config.web is None:
        return []
    from cvsyncd.web import web_problems

    subject = f"dashboard on {config.web.listen}"
    problems = web_problems(config)
    if problems:
        return [
            (False, subject, f"{p.message}; {p.valid}" if p.valid else p.message) for p in problems
        ]
    login = "a password" if config.web.password_file else "no password (this machine only)"
    return [(True, subject, f"ready, with {login}")]


def check_alerts(config: Config) -> list[Check]:
    """Whether Apprise is there and understands each alert URL, when ``[alerts]`` has some."""
    urls = config.alerts.urls
    if not urls:
        return []
    from cvsyncd.notify.alerts import check_urls, shown_url

    subject = "alerts to " + ", ".join(shown_url(url) for url in urls)
    problems = check_urls(urls)
    if problems:
        return [(False, subject, problem) for problem in problems]
    return [(True, subject, f"ready, for {', '.join(config.alerts.events) or 'no events'}")]


async def run_checks(config: Config) -> list[Check]:
    """Run every check; the config itself was already loaded (and so is valid)."""
    results: list[Check] = [(True, f"config {config.path}", "valid")]
    results += check_folders(config)
    results += check_web(config)
    results += check_alerts(config)
    results += check_places(config)
    results += check_state(config)
    results += await check_api(config)
    return results


def _existing_parent(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path("/")
