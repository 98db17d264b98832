"""From a request to an answer: routing, the API-key check, fault injection, the log line.

The order is deliberate. A fault is picked first, because the network and the service's
front end fail before any application logic runs; then the key is checked (API paths
only — presigned storage URLs carry their own signature); then the endpoint does its
work; then an "after" fault may spoil the answer of work already done. Every request,
whatever happens to it, ends with exactly one line in the request log.
"""

from __future__ import annotations

import math
import re
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

from cvsyncd.emulator.admin import AdminEndpoints
from cvsyncd.emulator.api import ApiEndpoints
from cvsyncd.emulator.faults import FaultInjector
from cvsyncd.emulator.httpio import Exchange, Response, reset_connection, write_response
from cvsyncd.emulator.replies import ErrorBodies, bad_gateway, malformed_json, s3_error
from cvsyncd.emulator.requestlog import RequestLog
from cvsyncd.emulator.state import State
from cvsyncd.emulator.storage import StorageEndpoints

# A body left unread after the answer is drained up to this size to keep the connection
# usable; a larger one costs a closed connection instead.
DRAIN_LIMIT = 16 * 1024 * 1024

Handle = Callable[[Exchange, Mapping[str, str]], Response]


@dataclass(frozen=True)
class Route:
    methods: frozenset[str]
    pattern: re.Pattern[str]
    endpoint: str  # the name in the request log and in fault settings
    area: str  # "api", "storage" or "admin"
    handle: Handle


def _route(methods: str, pattern: str, endpoint: str, area: str, handle: Handle) -> Route:
    return Route(frozenset(methods.split()), re.compile(pattern), endpoint, area, handle)


class Router:
    """Turns each request into one response (or a reset) and one request-log line."""

    def __init__(
        self,
        *,
        api: ApiEndpoints,
        storage: StorageEndpoints,
        admin: AdminEndpoints,
        state: State,
        faults: FaultInjector,
        errors: ErrorBodies,
        log: RequestLog,
        stopping: threading.Event,
    ):
        self._api = api
        self._storage = storage
        self._admin = admin
        self._state = state
        self._faults = faults
        self._errors = errors
        self._log = log
        self._stopping = stopping
        self._routes = (
            _route("POST", r"/v2/upload", "upload", "api", api.upload),
            _route("POST", r"/v2/edits", "create", "api", api.create),
            _route("GET", r"/v2/edits/(?P<edit_id>[^/]+)", "get", "api", api.get),
            _route("DELETE", r"/v2/edits/(?P<edit_id>[^/]+)", "delete", "api", api.delete),
            _route("GET", r"/v[12]/account", "account", "api", api.account),
            _route("PUT", r"/storage/.+", "put", "storage", storage.put),
            _route("GET HEAD", r"/storage/.+", "download", "storage", storage.download),
            _route("GET POST", r"/_emulator/faults", "admin", "admin", admin.faults),
            _route("GET", r"/_emulator/state", "admin", "admin", admin.state),
        )

    # -- routing ---------------------------------------------------------------------------

    def _match(self, exchange: Exchange) -> tuple[Route | None, dict[str, str], set[str]]:
        """Return the route for the request and its path parameters, or the allowed methods."""
        allowed: set[str] = set()
        for route in self._routes:
            match = route.pattern.fullmatch(exchange.path)
            if match is None:
                continue
            if exchange.method in route.methods:
                return route, match.groupdict(), allowed
            allowed |= route.methods
        return None, {}, allowed

    def _no_route(self, exchange: Exchange, allowed: set[str]) -> Response:
        if exchange.path.startswith("/storage/"):
            return s3_error(
                405, "MethodNotAllowed", "The specified method is not allowed", exchange.path
            )
        if allowed:
            message = f"Method {exchange.method} not allowed on {exchange.path}"
            allow = [("Allow", ", ".join(sorted(allowed)))]
            return self._errors.response(405, "METHOD_NOT_ALLOWED", message, allow)
        return self._errors.response(404, "NOT_FOUND", f"No such endpoint: {exchange.path}")

    def _run(self, exchange: Exchange, route: Route, params: Mapping[str, str]) -> Response:
        if route.area == "admin":
            return self._admin.refuse_remote(exchange) or route.handle(exchange, params)
        if route.area == "api" and (refusal := self._api.authenticate(exchange)) is not None:
            return refusal
        return route.handle(exchange, params)

    # -- faults ----------------------------------------------------------------------------

    def _fault_response(self, exchange: Exchange, kind: str | None) -> Response | None:
        """Return the answer a fault gives instead of (or after) the real one, if any."""
        storage = exchange.endpoint in ("put", "download")
        if kind == "429":
            wait = str(math.ceil(self._faults.settings.retry_after))
            message = "Too many requests (emulated fault)"
            return self._errors.response(429, "E9001", message, [("Retry-After", wait)])
        if kind in ("500", "500-after"):
            if storage:
                message = "We encountered an internal error. Please try again."
                return s3_error(500, "InternalError", message, exchange.path)
            return self._errors.response(
                500, "INTERNAL_ERROR", "Internal server error (emulated fault)"
            )
        if kind == "502":
            return bad_gateway()
        if kind == "503":
            if storage:
                return s3_error(503, "SlowDown", "Please reduce your request rate.", exchange.path)
            message = "Service temporarily unavailable (emulated fault)"
            return self._errors.response(503, "SERVICE_UNAVAILABLE", message)
        if kind == "expired-url":
            return s3_error(403, "AccessDenied", "Request has expired", exchange.path)
        if kind == "badjson":
            return malformed_json()
        return None

    # -- one request -----------------------------------------------------------------------

    def _answer(
        self, exchange: Exchange, route: Route | None, params: Mapping[str, str], allowed: set[str]
    ) -> Response | None:
        """Return the response to send, or None after resetting the connection."""
        if route is None:
            return self._no_route(exchange, allowed)
        kind = exchange.fault
        if kind == "slow":
            self._stopping.wait(self._faults.settings.slow_seconds)
        if kind in ("reset", "429", "500", "502", "503", "expired-url"):
            return None if kind == "reset" else self._fault_response(exchange, kind)
        try:
            response = self._run(exchange, route, params)
        except Exception:  # a bug in the emulator: answer like a crashed service would
            traceback.print_exc(file=sys.stderr)
            response = self._errors.response(
                500, "INTERNAL_ERROR", "emulator error (see its stderr)"
            )
        if kind == "reset-after":
            return None
        return (
            self._fault_response(exchange, kind) if kind in ("500-after", "badjson") else response
        )

    def _prepare(self, exchange: Exchange) -> Response | None:
        """Route the request, pick a fault and return the answer (None: reset instead)."""
        self._state.expire()
        route, params, allowed = self._match(exchange)
        if route is not None and route.area == "storage":
            exchange.auth = self._storage.signature_status(exchange)
        else:
            exchange.auth = self._api.key_status(exchange)
        if route is not None:
            exchange.endpoint = route.endpoint
            if route.area != "admin":
                exchange.fault = self._faults.pick(route.endpoint)
        return self._answer(exchange, route, params, allowed)

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        """Handle the request ``handler`` has just parsed: log it, then answer it.

        The log line is written before the answer is sent, so a client that has its answer
        can rely on finding the line.
        """
        exchange = Exchange(handler)
        try:
            response = self._prepare(exchange)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            response = self._errors.response(
                500, "INTERNAL_ERROR", "emulator error (see its stderr)"
            )
        if response is None:
            self._log.append(self._record(exchange, None, 0))
            reset_connection(handler)
            return
        close = not exchange.discard_body(DRAIN_LIMIT)
        truncate = exchange.fault == "truncate"
        head_only = exchange.method == "HEAD"
        sent = 0 if head_only else response.length // 2 if truncate else response.length
        self._log.append(self._record(exchange, response.status, sent))
        try:
            write_response(handler, response, head_only=head_only, truncate=truncate, close=close)
        except OSError:  # the client went away while we answered
            handler.close_connection = True

    @staticmethod
    def _record(exchange: Exchange, status: int | None, bytes_out: int) -> dict[str, Any]:
        return {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "method": exchange.method,
            "endpoint": exchange.endpoint,
            "path": exchange.path,
            "status": status,
            "auth": exchange.auth,
            **exchange.notes,
            "bytes_in": exchange.bytes_in,
            "bytes_out": bytes_out,
            "fault": exchange.fault,
            "processed": exchange.processed,
        }
