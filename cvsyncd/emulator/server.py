"""The HTTP/1.1 server: a ``ThreadingHTTPServer`` that can stop cleanly.

The standard server leaves keep-alive connections (and their threads) alive after
``shutdown()``; a test fixture that stops the emulator and deletes its folder must not
have a handler still writing there. So this server tracks its connections and their
threads, shuts the sockets down on stop and joins the threads.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from cvsyncd.emulator.router import Router

IDLE_TIMEOUT = 60.0  # seconds a connection may stay silent (mid-body or between requests)


class RequestHandler(BaseHTTPRequestHandler):
    """Hands every parsed request to the router; stays silent (the request log is the log)."""

    protocol_version = "HTTP/1.1"
    server_version = "cvsyncd-emulator"
    timeout = IDLE_TIMEOUT
    # Headers and body leave in separate writes; with Nagle's algorithm and delayed ACKs
    # every keep-alive request would stall about 40 ms.
    disable_nagle_algorithm = True

    def _dispatch(self) -> None:
        cast(EmulatorHTTPServer, self.server).router.serve(self)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _dispatch

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        pass


class EmulatorHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server whose connections can all be closed on ``stop``."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], router: Router):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.router = router
        self._live_lock = threading.Lock()
        self._live_sockets: set[socket.socket] = set()
        self._live_threads: set[threading.Thread] = set()
        super().__init__(address, RequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look up the host's FQDN, which can hang without DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name="cvsyncd-emulator-connection",
            daemon=True,
        )
        with self._live_lock:
            self._live_sockets.add(request)
            self._live_threads.add(thread)
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._live_lock:
                self._live_sockets.discard(request)
                self._live_threads.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):  # a client went away: nothing to report
            return
        super().handle_error(request, client_address)

    def close_connections(self, timeout: float) -> None:
        """Shut down every open connection and wait up to ``timeout`` for its thread."""
        with self._live_lock:
            sockets = list(self._live_sockets)
            threads = list(self._live_threads)
        for connection in sockets:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout)
