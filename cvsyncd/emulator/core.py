"""The ``Emulator`` object: builds the parts, binds the socket, starts and stops serving."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from cvsyncd.emulator.admin import AdminEndpoints
from cvsyncd.emulator.api import ApiEndpoints
from cvsyncd.emulator.faults import FaultInjector, FaultSettings
from cvsyncd.emulator.httpio import Exchange
from cvsyncd.emulator.ratelimit import SlidingWindowLimiter
from cvsyncd.emulator.replies import ErrorBodies
from cvsyncd.emulator.requestlog import RequestLog
from cvsyncd.emulator.router import Router
from cvsyncd.emulator.server import EmulatorHTTPServer
from cvsyncd.emulator.signing import UrlSigner
from cvsyncd.emulator.state import State, StateSettings
from cvsyncd.emulator.storage import StorageEndpoints
from cvsyncd.emulator.variants import Variants

DEFAULT_API_KEY = "cv-emulator-key"
_WILDCARD_HOSTS = ("", "0.0.0.0", "::")
_HOST_HEADER = re.compile(r"[A-Za-z0-9.\-]+(:\d+)?|\[[0-9A-Fa-f:.]+\](:\d+)?")
STOP_TIMEOUT = 5.0
POLL_INTERVAL = 0.02  # how soon stop() is noticed by the accept loop


def _check_settings(**values: float) -> None:
    negative = [name for name, value in values.items() if value < 0]
    if negative:
        raise ValueError(f"must not be negative: {', '.join(negative)}")


class Emulator:
    """A Cleanvoice-compatible API server on ``host:port``, its files under ``data_dir``.

    With ``vary`` (a seed) every answer takes one of its documented shapes at random
    (``variants.py``); without, the canonical shape of the docs' examples. ``vary_pin``
    fixes chosen points to one option (``{"social-shape": "list-text"}``), for tests.

    ``start()`` serves in a daemon thread; ``stop()`` closes every connection and joins it.
    It can be started again after a stop (same port, same edits): a way to emulate an
    outage. Use it as a context manager in tests. ``signer`` is public so a test can make
    a URL signed in the past (an expired one).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        processing_seconds: float = 5.0,
        processing_ratio: float = 0.0,
        success_without_result: int = 0,
        credits: float = 100.0,
        rate_limits: bool = True,
        error_style: str = "error",
        faults: FaultSettings | None = None,
        seed: int | None = None,
        retention_seconds: float = 7 * 24 * 3600,
        vary: int | None = None,
        vary_pin: Mapping[str, str] | None = None,
    ):
        _check_settings(
            port=port,
            processing_seconds=processing_seconds,
            processing_ratio=processing_ratio,
            success_without_result=success_without_result,
            credits=credits,
            retention_seconds=retention_seconds,
        )
        if not api_key:
            raise ValueError("api_key must not be empty")
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.request_log = self.data_dir / "requests.jsonl"
        self.signer = UrlSigner()
        self._port = port
        self._log = RequestLog(self.request_log)
        self._faults = FaultInjector(faults or FaultSettings(), seed)
        self._stopping = threading.Event()
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._state = State(
            self.data_dir,
            StateSettings(
                processing_seconds=processing_seconds,
                processing_ratio=processing_ratio,
                success_without_result=success_without_result,
                credits_hours=credits,
                retention_seconds=retention_seconds,
            ),
        )
        # varied mode: every answer picks among its documented shapes (seeded by ``vary``)
        self.variants = Variants(vary, vary_pin)
        style = "varied" if vary is not None and error_style == "error" else error_style
        self._router = self._make_router(api_key, rate_limits, ErrorBodies(style, self.variants))

    def _make_router(self, api_key: str, rate_limits: bool, errors: ErrorBodies) -> Router:
        limiter = SlidingWindowLimiter() if rate_limits else None
        api = ApiEndpoints(
            self._state, self.signer, errors, api_key, limiter, self._origin, self.variants
        )
        return Router(
            api=api,
            storage=StorageEndpoints(self._state, self.signer),
            admin=AdminEndpoints(self._faults, self._state, self.variants),
            state=self._state,
            faults=self._faults,
            errors=errors,
            log=self._log,
            stopping=self._stopping,
        )

    # -- addresses -------------------------------------------------------------------------

    def _url_host(self) -> str:
        if self.host in ("", "0.0.0.0"):
            return "127.0.0.1"
        if self.host == "::":
            return "[::1]"
        return f"[{self.host}]" if ":" in self.host else self.host

    def _origin(self, exchange: Exchange) -> str:
        """Return scheme://host:port for URLs handed to this client.

        Bound to a wildcard address, the emulator can only know which of its addresses
        the client used from the Host header.
        """
        host = exchange.headers.get("Host", "")
        if self.host in _WILDCARD_HOSTS and _HOST_HEADER.fullmatch(host):
            return f"http://{host}"
        return f"http://{self._url_host()}:{self._port}"

    @property
    def port(self) -> int:
        """The TCP port (resolved once started when 0 was asked for)."""
        if self._port == 0:
            raise RuntimeError("the emulator has no port yet: call start() first")
        return self._port

    @property
    def base_url(self) -> str:
        """The API base URL, ``http://HOST:PORT/v2``."""
        return f"http://{self._url_host()}:{self.port}/v2"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Bind, listen and serve in a daemon thread; return once connections are accepted."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        self._stopping.clear()
        self._log.open()
        try:
            server = EmulatorHTTPServer((self.host, self._port), self._router)
        except BaseException:
            self._log.close()
            raise
        self._port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL},
            name="cvsyncd-emulator",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, close the listening socket and every connection, join the threads."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        server.close_connections(STOP_TIMEOUT)
        thread.join()
        self._server = self._thread = None
        self._log.close()

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- inspection and control ------------------------------------------------------------

    def requests(self) -> list[dict[str, Any]]:
        """Return the request log, parsed: one dict per completed request, oldest first."""
        return self._log.read()

    def add_credits(self, hours: float) -> None:
        """Add ``hours`` of audio to the account's credit, as a purchase would."""
        self._state.add_credits(hours)

    def set_faults(self, faults: FaultSettings) -> None:
        """Replace the fault settings; takes effect for the next request."""
        self._faults.set(faults)

    @property
    def faults(self) -> FaultSettings:
        return self._faults.settings
