"""The ``cvsyncd`` command. The only module that prints or chooses exit codes.

Exit codes: 0 success; 1 a runtime problem (the store, the API, a check that failed);
2 a usage or config error (nothing was done). Every error message starts with
``cvsyncd:`` and goes to stderr, as do the logs of every command; stdout holds only what
the command reports (and with ``--json``, JSON and nothing else). No traceback reaches a
user unless ``CVSYNCD_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from cvsyncd import __version__
from cvsyncd.config import Config, load_config, read_api_key
from cvsyncd.errors import ConfigError, CvsyncdError, UsageError
from cvsyncd.jobs import JobState
from cvsyncd.redact import register_secret
from cvsyncd.store import Store

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
DAEMON_COMMANDS = ("run", "process", "emulator")  # they set up their own logging
DEFAULT_CONFIGS = (Path("~/.config/cvsyncd/config.toml"), Path("/etc/cvsyncd/config.toml"))


def default_config_path(env: dict[str, str] | os._Environ[str] = os.environ) -> Path:
    """``$CVSYNCD_CONFIG``, else the user's config if it exists, else the system one."""
    if env.get("CVSYNCD_CONFIG"):
        return Path(env["CVSYNCD_CONFIG"])
    user = DEFAULT_CONFIGS[0].expanduser()
    return user if user.exists() else DEFAULT_CONFIGS[1]


class Parser(argparse.ArgumentParser):
    """argparse, with its usage errors worded and coded like every other cvsyncd error."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("cvsyncd").strip()
        hint = f"cvsyncd {command} --help" if command else "cvsyncd --help"
        self.exit(EXIT_USAGE, f"cvsyncd: {message} (see `{hint}`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="cvsyncd",
        description="Watch inbox folders and clean every new recording with Cleanvoice AI.",
    )
    parser.add_argument("--version", action="version", version=f"cvsyncd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str,
        help_text: str,
        func: Callable[[argparse.Namespace, TextIO], int],
        config: bool = True,
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        if config:
            p.add_argument(
                "-c",
                "--config",
                type=Path,
                default=None,
                help="config file (default: $CVSYNCD_CONFIG, "
                "~/.config/cvsyncd/config.toml, /etc/cvsyncd/config.toml)",
            )
        p.set_defaults(func=func)
        return p

    init = command(
        "init", "write a commented starter config (asks when run in a terminal)", cmd_init
    )
    init.add_argument("--inbox", help="the folder recordings are dropped into")
    init.add_argument("--outbox", help="the folder results go to")
    init.add_argument("--preset", help="a starter preset: podcast, interview or noise-only")
    init.add_argument(
        "--after", choices=["keep", "move", "delete"], help="what happens to a recording once done"
    )
    init.add_argument("--api-key-file", help="a file (mode 0600) holding the API key")
    init.add_argument(
        "--yes", action="store_true", help="write to a system path (such as /etc) without asking"
    )
    run = command("run", "run the daemon in the foreground (SIGTERM/SIGINT stop it)", cmd_run)
    run.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="override [daemon] log_level",
    )
    command(
        "check", "check the config, the folders, the state directory and the API key", cmd_check
    )
    process = command(
        "process",
        "process files once, in the foreground, and exit (for "
        "scripts and cron): 0 when all are done, 1 otherwise",
        cmd_process,
    )
    process.add_argument("files", nargs="+", type=Path, metavar="FILE")
    process.add_argument("--preset", help="a preset of the config to use instead of the folder's")
    process.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="warning",
        help="log level (default: warning)",
    )
    status = command(
        "status",
        "a summary: jobs per state and folder, what sets the pace, what needs you",
        cmd_status,
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--all", action="store_true", help="list every job too")
    jobs = command("jobs", "list jobs", cmd_jobs)
    jobs.add_argument("--state", choices=[s.value for s in JobState], help="only this state")
    jobs.add_argument("--json", action="store_true", help="machine-readable output")
    retry = command(
        "retry",
        "queue failed, needs_attention or duplicate jobs again "
        "(submits them anew, asking nothing further)",
        cmd_retry,
    )
    retry.add_argument("jobs", nargs="*", type=int, metavar="JOB", help="job ids")
    retry.add_argument("--failed", action="store_true", help="all failed jobs")
    retry.add_argument(
        "--needs-attention",
        action="store_true",
        help="all needs_attention jobs (may bill twice if Cleanvoice did create their first edit)",
    )
    forget = command("forget", "forget finished jobs, so the same input is taken again", cmd_forget)
    forget.add_argument("jobs", nargs="+", type=int, metavar="JOB", help="job ids")
    show = command("show", "everything known about a job", cmd_show)
    show.add_argument("job", type=int, metavar="JOB", help="a job id")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    render_cmd = command(
        "render",
        "write done jobs' transcripts, summaries and marker files "
        "again from their stored results (after changing formats or speaker "
        "names); no API call",
        cmd_render,
    )
    render_cmd.add_argument("jobs", nargs="+", type=int, metavar="JOB", help="job ids")
    pause = command(
        "pause",
        "hold back new uploads and submissions (of one folder, or all); "
        "a running daemon obeys within seconds",
        cmd_pause,
    )
    pause.add_argument("folder", nargs="?", help="a folder's name or inbox (default: all)")
    pause.add_argument("--reason", help="a note shown by cvsyncd status")
    resume = command("resume", "let a paused folder (or all) take new work again", cmd_resume)
    resume.add_argument("folder", nargs="?", help="a folder's name or inbox (default: all)")
    account = command("account", "show the Cleanvoice account's credit balance", cmd_account)
    account.add_argument("--json", action="store_true", help="machine-readable output")
    emulator = command(
        "emulator",
        "serve a local Cleanvoice API emulator (for trying cvsyncd and for tests)",
        cmd_emulator,
        config=False,
    )
    from cvsyncd.emulator import add_arguments

    add_arguments(emulator)
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
        print(f"cvsyncd: the config has {_count(len(exc.problems), 'problem')}:", file=sys.stderr)
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
    from cvsyncd import logs

    logs.configure("warning", sys.stderr, journal=False)


def main_entry() -> None:
    from cvsyncd.aio import exit_now_if_stuck

    code = main()
    exit_now_if_stuck(code)
    sys.exit(code)


# -- commands ---------------------------------------------------------------------


def cmd_init(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd.starter import STARTERS, ask, starter_config, write_starter

    path = Path(os.path.abspath(args.config or default_config_path()))
    given = {
        k: v
        for k, v in (
            ("inbox", args.inbox),
            ("outbox", args.outbox),
            ("preset", args.preset),
            ("after", args.after),
        )
        if v
    }
    interactive = sys.stdin.isatty()
    if path.exists():
        raise CvsyncdError(
            f"{path} already exists; cvsyncd init never overwrites a config file "
            "(move it aside, or give another path with -c)"
        )
    if not interactive and "inbox" not in given:
        raise UsageError(
            "init is not in a terminal, so nothing can be asked: give at least "
            "--inbox (and --outbox, --preset, --after)"
        )
    print(f"cvsyncd init writes a new config file: {path}", file=out, flush=True)
    if is_system_path(path) and not args.yes:
        if not interactive:
            raise UsageError(
                f"{path} is outside your home and working folders (a system path); "
                "give --yes to write there, or -c PATH for another place"
            )
        answer = input(f"{path} is a system path. Write it there? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("nothing written", file=out)
            return EXIT_FAILURE
    if interactive and len(given) < 4:
        answers = ask(input, given)
    elif "inbox" in given:
        preset = given.get("preset", "podcast")
        if preset not in STARTERS:
            raise UsageError(f"--preset must be one of {', '.join(STARTERS)}")
        answers = {
            "inbox": given["inbox"],
            "outbox": given.get("outbox") or str(Path(given["inbox"]).parent / "outbox"),
            "preset_name": preset,
            "preset_options": dict(STARTERS[preset].options),
            "after": given.get("after", "keep"),
        }
    else:  # pragma: no cover - refused above
        raise UsageError("give --inbox")
    write_starter(path, starter_config(**answers, api_key_file=args.api_key_file))
    print(
        f"wrote {path} (mode 0600). Next: put your API key where it says, then run "
        f"`cvsyncd check -c {path}`.",
        file=out,
    )
    return EXIT_OK


def is_system_path(path: Path, env: Mapping[str, str] | None = None) -> bool:
    """Whether ``path`` lies outside the user's home and the working folder (``/etc`` …)."""
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    places = [Path.cwd(), home]
    return not any(path.is_relative_to(place) for place in places if str(place) != "/")


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd import aio, logs
    from cvsyncd.service import Daemon

    config = _load_to_work(args)
    api_key = read_api_key(config)
    register_secret(api_key)
    logs.configure(args.log_level or config.daemon.log_level)
    aio.run(Daemon(config, api_key, args.log_level).run())
    return EXIT_OK


def cmd_process(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd import aio, logs
    from cvsyncd.oneshot import process_files

    config = _load_to_work(args)
    api_key = read_api_key(config)
    register_secret(api_key)
    logs.configure(args.log_level)

    def report(line: str) -> None:
        print(line, file=out, flush=True)

    jobs = aio.run(process_files(config, api_key, args.files, args.preset, report))
    finished = {JobState.DONE, JobState.DUPLICATE}
    return EXIT_OK if jobs and all(j.state in finished for j in jobs) else EXIT_FAILURE


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd.checks import run_checks

    config = _load(args)
    results = asyncio.run(run_checks(config))
    for ok, subject, detail in results:
        mark = "ok  " if ok else "warn" if ok is None else "FAIL"
        print(f"{mark}  {subject}{': ' + detail if detail else ''}", file=out)
    failed = sum(1 for ok, _, _ in results if ok is False)
    if failed:
        print(
            f"\n{_count(failed, 'check')} failed; fix the lines marked FAIL and run "
            f"`cvsyncd check -c {config.path}` again.",
            file=out,
        )
        return EXIT_FAILURE
    print(f"\nAll good. Start the daemon with `cvsyncd run -c {config.path}`.", file=out)
    return EXIT_OK


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd.reports import print_status, status_report

    config = _load(args)
    with _open_store(config) as store:
        report = status_report(config, store, every_job=args.all)
    if args.json:
        json.dump(report, out, indent=2)
        out.write("\n")
        return EXIT_OK
    print_status(report, out)
    return EXIT_OK


def cmd_jobs(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd.reports import job_summary

    config = _load(args)
    states = [JobState(args.state)] if args.state else None
    with _open_store(config) as store:
        entries = [job_summary(job) for job in (store.jobs(states) if store else [])]
    if args.json:
        json.dump(entries, out, indent=2)
        out.write("\n")
        return EXIT_OK
    if not entries:
        print("no jobs", file=out)
    for e in entries:
        extra = f"  edit {e['edit_id']}" if e["edit_id"] else ""
        print(f"#{e['id']:<5} {e['state']:<15} {e['name']}{extra}", file=out)
        if e["error"]:
            print(f"       {e['error']}", file=out)
    return EXIT_OK


def cmd_retry(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd.manage import retry_jobs

    states = [JobState.FAILED] * args.failed + [JobState.NEEDS_ATTENTION] * args.needs_attention
    if not args.jobs and not states:
        raise UsageError("retry needs job ids, or --failed / --needs-attention")
    config = _load(args)
    with _open_store(config) as store:
        outcomes = retry_jobs(config, _require(store, config), args.jobs, states)
    return _report(outcomes, out, "nothing to retry")


def cmd_forget(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd.manage import forget_jobs

    config = _load(args)
    with _open_store(config) as store:
        outcomes = forget_jobs(config, _require(store, config), args.jobs)
    return _report(outcomes, out, "nothing to forget")


def cmd_render(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd.manage import render_jobs

    config = _load(args)
    with _open_store(config) as store:
        outcomes = render_jobs(config, _require(store, config), args.jobs)
    return _report(outcomes, out, "nothing to render")


def cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd.manage import describe_job
    from cvsyncd.reports import print_job

    config = _load(args)
    with _open_store(config) as store:
        described = describe_job(config, _require(store, config), args.job)
    if described is None:
        raise CvsyncdError(f"there is no job {args.job} (`cvsyncd jobs` lists them)")
    if args.json:
        json.dump(described, out, indent=2)
        out.write("\n")
        return EXIT_OK
    print_job(described, out)
    return EXIT_OK


def cmd_pause(args: argparse.Namespace, out: TextIO) -> int:
    return _hold(args, out, resume=False)


def cmd_resume(args: argparse.Namespace, out: TextIO) -> int:
    return _hold(args, out, resume=True)


def _hold(args: argparse.Namespace, out: TextIO, *, resume: bool) -> int:
    from cvsyncd.manage import hold

    config = _load(args)
    store = Store.open(config.daemon.state_dir)
    try:
        outcome = hold(config, store, args.folder, getattr(args, "reason", None), resume=resume)
    finally:
        store.close()
    return _report([outcome], out, "")


def cmd_account(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd.answers import account_balance, balance_unit
    from cvsyncd.checks import fetch_account

    config = _load(args)
    account = asyncio.run(fetch_account(config))
    if args.json:
        json.dump(account, out, indent=2)
        out.write("\n")
        return EXIT_OK
    balance = account_balance(account)
    if balance is None:
        print("credit:       not told by this account's answer", file=out)
    else:
        print(f"credit:       {balance:g} {balance_unit(account)}", file=out)
    credit = account.get("credit")
    if isinstance(credit, dict) and {"subscription", "payg"} & set(credit):
        print(
            f"              subscription {credit.get('subscription')}, "
            f"pay as you go {credit.get('payg')}",
            file=out,
        )
    if isinstance(account.get("account_type"), str):
        print(f"account type: {account['account_type']}", file=out)
    user = account.get("user")
    email = user.get("email") if isinstance(user, dict) else user
    if isinstance(email, str) and email:
        print(f"user:         {email}", file=out)
    return EXIT_OK


def cmd_emulator(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd.emulator import run_from_args

    return run_from_args(args, out)


# -- helpers ----------------------------------------------------------------------


def _load(args: argparse.Namespace) -> Config:
    return load_config(args.config or default_config_path())


def _load_to_work(args: argparse.Namespace) -> Config:
    """The config, for a command that takes recordings: also checked on disk, where a
    link or a mount may make an outbox lead into an inbox (``places.py``)."""
    from cvsyncd.places import overlaps

    config = _load(args)
    problems = overlaps(config)
    if problems:
        raise ConfigError(problems)
    return config


class _StoreContext:
    def __init__(self, config: Config):
        self.config = config
        self.store: Store | None = None

    def __enter__(self) -> Store | None:
        self.store = Store.open_existing(self.config.daemon.state_dir)
        return self.store

    def __exit__(self, *exc: object) -> None:
        if self.store:
            self.store.close()


def _open_store(config: Config) -> _StoreContext:
    return _StoreContext(config)


def _require(store: Store | None, config: Config) -> Store:
    if store is None:
        raise CvsyncdError(f"there are no jobs yet: no state database in {config.daemon.state_dir}")
    return store


def _report(outcomes: list[Any], out: TextIO, empty: str) -> int:
    if not outcomes:
        print(empty, file=out)
    for outcome in outcomes:
        print(outcome.message, file=out if outcome.ok else sys.stderr)
    return EXIT_OK if all(o.ok for o in outcomes) else EXIT_FAILURE


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
