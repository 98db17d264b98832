"""``cvsyncd emulator``: its flags, and serving until SIGINT or SIGTERM.

The first line on stdout is the contract with scripts and tests: they read the URL from it
(with ``--port 0`` the port actually bound). Signal handlers only set a flag; the main loop
notices it, stops the server cleanly and the previous handlers are put back.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from cvsyncd.emulator.core import DEFAULT_API_KEY, Emulator
from cvsyncd.emulator.faults import ENDPOINTS, KINDS, FaultSettings
from cvsyncd.emulator.replies import ERROR_STYLES

WAKE_SECONDS = 0.1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _non_negative(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"must not be negative: {text}")
        return value

    return parse


def _probability(text: str) -> float:
    value = _non_negative(float)(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1: {text}")
    return float(value)


def _names(valid: tuple[str, ...]) -> Callable[[str], frozenset[str]]:
    def parse(text: str) -> frozenset[str]:
        names = frozenset(name.strip() for name in text.split(",") if name.strip())
        unknown = sorted(names - set(valid))
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown: {', '.join(unknown)} — valid: {', '.join(valid)}"
            )
        return names

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flags of ``cvsyncd emulator`` to ``parser``."""
    number, count = _non_negative(float), _non_negative(int)
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    add(
        "--port",
        type=count,
        default=8765,
        help="TCP port (default: %(default)s; 0 = any free port)",
    )
    add(
        "--data-dir",
        type=Path,
        help="uploads, results and requests.jsonl (default: a new temporary directory)",
    )
    add(
        "--api-key",
        default=DEFAULT_API_KEY,
        help="the key clients must send; a test key, not a Cleanvoice key (default: %(default)s)",
    )
    add(
        "--processing-seconds",
        type=number,
        default=5.0,
        help="minimum processing time of an edit (default: %(default)s)",
    )
    add(
        "--processing-ratio",
        type=number,
        default=0.0,
        help="processing time = max(processing seconds, ratio * audio duration) (default: 0)",
    )
    add(
        "--success-without-result",
        type=count,
        default=0,
        metavar="N",
        help="answer the first N polls after completion with SUCCESS but no result",
    )
    add(
        "--credits",
        type=number,
        default=100.0,
        metavar="HOURS",
        help="audio hours the account may process (default: %(default)s)",
    )
    add(
        "--no-rate-limits",
        dest="rate_limits",
        action="store_false",
        help="do not enforce 30/min submissions and 300/min polls",
    )
    add(
        "--error-style",
        choices=ERROR_STYLES,
        default="error",
        help="shape of error bodies (default: %(default)s)",
    )
    add(
        "--fault-rate",
        type=_probability,
        default=0.0,
        metavar="P",
        help="probability of a fault per request (default: 0)",
    )
    add(
        "--faults",
        type=_names(KINDS),
        default=frozenset(KINDS),
        metavar="KIND,…",
        help="fault kinds to inject (default: all): " + ", ".join(KINDS),
    )
    add(
        "--fault-endpoints",
        type=_names(ENDPOINTS),
        default=frozenset(ENDPOINTS),
        metavar="EP,…",
        help="endpoints to inject faults into (default: all): " + ", ".join(ENDPOINTS),
    )
    add(
        "--slow-seconds",
        type=number,
        default=2.0,
        help="delay of the 'slow' fault (default: %(default)s)",
    )
    add(
        "--retry-after",
        type=number,
        default=1.0,
        help="Retry-After of injected 429s (default: %(default)s)",
    )
    add("--seed", type=int, help="seed of the fault RNG, for reproducible runs")
    add(
        "--vary",
        type=int,
        metavar="SEED",
        help="varied mode: every answer takes one of its documented shapes, picked with "
        "this seed (default: the canonical shape of the docs' examples)",
    )
    add(
        "--retention-seconds",
        type=number,
        default=7 * 24 * 3600.0,
        help="files are deleted this long after processing (default: 7 days)",
    )


def _make_emulator(args: argparse.Namespace, data_dir: Path) -> Emulator:
    faults = FaultSettings(
        rate=args.fault_rate,
        kinds=args.faults,
        endpoints=args.fault_endpoints,
        slow_seconds=args.slow_seconds,
        retry_after=args.retry_after,
    )
    return Emulator(
        data_dir,
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        processing_seconds=args.processing_seconds,
        processing_ratio=args.processing_ratio,
        success_without_result=args.success_without_result,
        credits=args.credits,
        rate_limits=args.rate_limits,
        error_style=args.error_style,
        faults=faults,
        seed=args.seed,
        retention_seconds=args.retention_seconds,
        vary=args.vary,
    )


class _StopRequest:
    """Set by a signal handler; a plain attribute, since handlers must not take locks."""

    def __init__(self) -> None:
        self.requested = False

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def _install_handlers(stop: _StopRequest) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}  # only the main thread may set handlers; use stop_event there instead
    return {signum: signal.signal(signum, stop.handle) for signum in STOP_SIGNALS}


def _restore_handlers(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def run_from_args(
    args: argparse.Namespace, stdout: TextIO, *, stop_event: threading.Event | None = None
) -> int:
    """Serve the emulator configured by ``args`` until SIGINT/SIGTERM; return the exit code.

    Writes one line with the base URL to ``stdout``. ``stop_event`` stops it too, for
    callers outside the main thread (where signal handlers cannot be installed).
    """
    data_dir = args.data_dir
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="cvsyncd-emulator-"))
        print(f"cvsyncd emulator: data directory {data_dir} (kept after exit)", file=sys.stderr)
    emulator = _make_emulator(args, data_dir)
    stop = _StopRequest()
    previous = _install_handlers(stop)
    try:
        try:
            emulator.start()
        except OSError as error:
            print(
                f"cvsyncd emulator: cannot listen on {args.host}:{args.port}: {error}",
                file=sys.stderr,
            )
            return 1
        try:
            stdout.write(f"cvsyncd emulator: serving the Cleanvoice API at {emulator.base_url}\n")
            stdout.flush()
            wait = stop_event or threading.Event()
            while not stop.requested and not wait.wait(WAKE_SECONDS):
                pass
        finally:
            emulator.stop()
    finally:
        _restore_handlers(previous)
    return 0
