"""Small asyncio helpers the daemon's loops share, and a runner that never waits forever.

``asyncio.run`` joins every worker thread of the default executor before it returns, and
the interpreter joins them again at exit. A thread stuck in the kernel (a read from a
network share that went away) would then keep a stopped daemon alive for good, deaf to
SIGTERM. :func:`run` gives such threads a few seconds, then leaves them behind, and
:func:`exit_now_if_stuck` ends the process without joining them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
EXECUTOR_GRACE_SECONDS = 5.0

_abandoned: list[threading.Thread] = []


async def wait_for_any(*events: asyncio.Event, timeout: float | None = None) -> None:
    """Return when any of ``events`` is set, or after ``timeout`` seconds (no error)."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def run(main: Coroutine[Any, Any, T], grace: float = EXECUTOR_GRACE_SECONDS) -> T:
    """Run ``main`` like ``asyncio.run``, but wait at most ``grace`` seconds for the worker
    threads at the end; threads still busy then are abandoned (see exit_now_if_stuck)."""
    executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="cvsyncd-io")
    with asyncio.Runner() as runner:
        runner.get_loop().set_default_executor(executor)
        try:
            return runner.run(main)
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
            threads = list(getattr(executor, "_threads", ()))
            for thread in threads:
                thread.join(timeout=max(0.0, grace / max(len(threads), 1)))
            _abandoned.extend(t for t in threads if t.is_alive())


def exit_now_if_stuck(code: int) -> None:
    """End the process with ``code`` at once if ``run`` left worker threads behind.

    Only the last thing a command does: stdout and stderr are flushed, nothing else runs.
    """
    if not any(t.is_alive() for t in _abandoned):
        return
    print(
        f"cvsyncd: {len(_abandoned)} file operation(s) did not finish (a stuck disk or "
        "network share?); exiting without waiting for them",
        file=sys.stderr,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
