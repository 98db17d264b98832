"""The dashboard's HTTP server: uvicorn's ``Server``, run as one more task of the
daemon's own asyncio loop (no second process, no thread).

Two of uvicorn's habits do not suit a daemon that owns its loop:

- ``Server.serve`` installs its own SIGINT/SIGTERM handlers (``capture_signals``), which
  would replace the daemon's: :class:`EmbeddedServer` captures nothing;
- its main loop wakes every 0.1 s to refresh the ``Date`` header and look for a stop:
  here it sleeps until :meth:`EmbeddedServer.stop` (no ``Date`` header is sent), so an
  idle dashboard costs no wake-ups.

The socket is bound before the server starts (:func:`bind`), so that an address in use
is a clear error naming ``[web] listen`` and the config file, at the daemon's start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from cvsyncd.config.model import WebSettings
from cvsyncd.errors import CvsyncdError

GRACE_SECONDS = 3  # open connections get this long to finish when the daemon stops


class EmbeddedServer(uvicorn.Server):
    """uvicorn's server inside a loop it does not own."""

    def __init__(self, config: uvicorn.Config):
        super().__init__(config)
        self._exit = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the daemon's signal handlers stay; it stops the server itself

    async def main_loop(self) -> None:
        await self.on_tick(0)  # the default headers, once
        await self._exit.wait()

    def stop(self) -> None:
        self.should_exit = True
        self._exit.set()


def bind(settings: WebSettings, config_path: Path) -> socket.socket:
    """A listening socket on ``settings``' address. Raise CvsyncdError naming the config
    key if it cannot be had (in use, not an address of this machine, no permission)."""
    where = f"{config_path}: web.listen = {settings.listen!r}"
    try:
        infos = socket.getaddrinfo(
            settings.host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise CvsyncdError(f"{where}: the host is unknown ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    try:
        sock = socket.create_server(
            address, family=family, backlog=64, dualstack_ipv6=False, reuse_port=False
        )
    except OSError as exc:
        hint = (
            "another program (or another cvsyncd) listens there; pick another port"
            if exc.errno == 98  # EADDRINUSE
            else "use an address of this machine, or a port above 1023"
        )
        raise CvsyncdError(f"{where}: cannot listen there ({exc.strerror}); {hint}") from None
    # asyncio sets TCP_NODELAY only on sockets made with proto=IPPROTO_TCP, which these
    # are not; without it, uvicorn's two writes (head, then body) wait for the client's
    # delayed ACK: 40 ms for every answer on a kept-alive connection. Accepted sockets
    # inherit it from the listening one.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def make_server(app: ASGIApp) -> EmbeddedServer:
    """uvicorn with h11 only, no lifespan, no logging of its own, no proxy headers."""
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)  # its start and stop lines
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        date_header=False,
        proxy_headers=False,
        http="h11",
        ws="none",
        timeout_graceful_shutdown=GRACE_SECONDS,
    )
    return EmbeddedServer(config)


async def serve(server: EmbeddedServer, sock: socket.socket, stop: asyncio.Event) -> None:
    """Serve on ``sock`` until ``stop`` is set."""
    task = asyncio.create_task(server.serve(sockets=[sock]), name="web-server")
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        server.stop()
        await asyncio.gather(task, waiter, return_exceptions=True)
        sock.close()
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
