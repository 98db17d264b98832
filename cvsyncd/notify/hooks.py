"""Telling the outside world that a job ended: the hook command (``on_done``/``on_failed``).

The hook is an argv list run without a shell, in a new session (its own process group),
with the event in environment variables and as JSON on stdin. It does not inherit the
systemd variables meant for the daemon (``NOTIFY_SOCKET``, ``WATCHDOG_*``, ``LISTEN_*``)
nor the API key. After ``timeout`` seconds its whole process group gets SIGTERM, and
SIGKILL a second later. Its output is kept up to ``OUTPUT_LIMIT`` bytes a stream and
logged. It is best effort: :func:`run_command` returns a :class:`Report` and raises nothing
for a missing program, a non-zero exit or a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from cvsyncd import events as ev
from cvsyncd.config.apikey import API_KEY_VARIABLE
from cvsyncd.notify.message import Event, Report
from cvsyncd.redact import scrub

OUTPUT_LIMIT = 16 * 1024  # bytes of a hook's stdout and of its stderr that are kept
LOGGED_OUTPUT = 2000  # characters of each shown in the log
KILL_GRACE = 1.0  # seconds between SIGTERM and SIGKILL
# the variables systemd gives the daemon's main process alone: a hook with them could
# notify systemd or trip the watchdog in the daemon's name
SYSTEMD_ONLY_VARIABLES = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
)
# nor may it find the API key, or where its systemd credential lives
DROPPED_VARIABLES = (*SYSTEMD_ONLY_VARIABLES, API_KEY_VARIABLE, "CREDENTIALS_DIRECTORY")


def hook_environment(event: Event, base: Mapping[str, str]) -> dict[str, str]:
    """Return the environment of a hook: ``base`` without the daemon's own variables, plus
    the event (``CVSYNCD_*``)."""
    env = {key: value for key, value in base.items() if key not in DROPPED_VARIABLES}
    env.update(
        {
            "CVSYNCD_EVENT": event.kind,
            "CVSYNCD_JOB_ID": str(event.job_id),
            "CVSYNCD_STATE": event.state,
            "CVSYNCD_FOLDER": event.folder,
            "CVSYNCD_INPUT": event.input,
            "CVSYNCD_OUTPUTS": "\n".join(event.outputs),
            "CVSYNCD_ERROR": event.error or "",
        }
    )
    return {key: value.replace("\x00", "") for key, value in env.items()}


async def run_command(
    argv: Sequence[str], event: Event, *, timeout: float, env: Mapping[str, str] | None = None
) -> Report:
    """Run a hook for ``event`` (see the module docstring) and return how it went.

    ``env`` is the environment to start from (default: the daemon's). A program that
    cannot be started, a non-zero exit or a timeout is a failed Delivery.
    """
    log = structlog.get_logger("cvsyncd.notify").bind(
        hook=argv[0] if argv else "", notify_event=event.kind, job=event.job_id
    )
    if not argv:
        return Report("command", False, 0, "no command given")
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=hook_environment(event, os.environ if env is None else env),
            start_new_session=True,
        )
    except (OSError, ValueError) as error:
        detail = f"cannot run {argv[0]}: {getattr(error, 'strerror', None) or error}"
        log.warning(ev.HOOK_NOT_STARTED, detail=detail)
        return Report("command", False, 1, scrub(detail))
    work = asyncio.gather(
        _feed(process, event.to_json()),
        _capture(process.stdout),
        _capture(process.stderr),
        process.wait(),
    )
    timed_out = False
    try:
        try:
            _, out, err, code = await asyncio.wait_for(asyncio.shield(work), timeout)
        except TimeoutError:
            timed_out = True
            _, out, err, code = await _stop(process, work)
    except asyncio.CancelledError:  # the daemon is stopping: leave nothing behind
        await _stop(process, work)
        raise
    if timed_out:
        if process.returncode is None or process.returncode < 0:
            detail = f"killed after the {timeout:g} s timeout"
        else:
            detail = (
                f"exit {process.returncode}, but processes it started kept its output open "
                f"past the {timeout:g} s timeout: killed"
            )
        ok = False
    else:
        ok = code == 0
        detail = f"exit {code}" if code >= 0 else f"killed by signal {-code}"
    fields = {"stdout": _show(out), "stderr": _show(err), "detail": detail}
    if ok:
        log.info(ev.HOOK_DONE, **fields)
    else:
        log.warning(ev.HOOK_FAILED, **fields)
    return Report("command", ok, 1, scrub(detail))


async def _feed(process: asyncio.subprocess.Process, body: bytes) -> None:
    """Write the event to the hook's stdin; a hook that does not read it is fine."""
    assert process.stdin is not None
    try:
        process.stdin.write(body)
        await process.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        process.stdin.close()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await process.stdin.wait_closed()


async def _capture(stream: asyncio.StreamReader | None) -> bytes:
    """Read a stream to its end, keeping its first OUTPUT_LIMIT bytes."""
    kept = bytearray()
    while stream is not None and (chunk := await stream.read(65536)):
        kept += chunk[: max(OUTPUT_LIMIT - len(kept), 0)]
    return bytes(kept)


async def _stop(
    process: asyncio.subprocess.Process, work: asyncio.Future[Any]
) -> tuple[Any, bytes, bytes, int]:
    """TERM, then KILL, the hook's process group, and collect what it wrote."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(asyncio.shield(work), KILL_GRACE)
    # something left the group and still holds the pipes: stop listening to it
    transport = getattr(process, "_transport", None)  # asyncio offers no public close
    if transport is not None:
        transport.close()
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await work
    return None, b"", b"", process.returncode if process.returncode is not None else -9


def _show(output: bytes) -> str:
    text = output.decode("utf-8", errors="replace").strip()
    return text if len(text) <= LOGGED_OUTPUT else text[:LOGGED_OUTPUT] + " …"
