"""A hostile stand-in for Cleanvoice: a proxy on 127.0.0.1 in front of the emulator that
misbehaves on purpose, as a broken or malicious server (or the network in between) would.

Requests go to the emulator and its answers come back, except where a rule says
otherwise. Signed URLs in the emulator's JSON answers are rewritten to point at the proxy,
so that uploads and downloads pass through it too. Each rule matches a method and a path
pattern and applies an action to the next ``times`` matching requests (or all of them):

- ``status``: answer ``status`` with ``body`` (the emulator never sees the request);
- ``redirect``: answer 307 to ``location`` (a path on the proxy, a URL, or by default
  the same URL: the next request there is not redirected again once ``times`` is spent);
- ``replace``: pass the request on, then answer ``body`` instead (the work was done);
- ``gzip``: pass it on, then send the answer compressed, whatever the client asked for;
- ``trickle``: pass it on, then send the answer one byte every ``interval`` seconds;
- ``endless``: answer 200 with a body that never ends (no length, bytes until the client
  hangs up);
- ``huge``: answer 200 with a JSON body of ``size`` bytes.

``log`` keeps every request (method, path, whether it carried the API key, what was done)
for the assertions. Only loopback is ever contacted.
"""

from __future__ import annotations

import gzip
import http.client
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Rule:
    method: str
    path: str  # a regular expression, matched against the whole path (without query)
    action: str
    times: int | None = 1  # None: every matching request
    status: int = 200
    body: bytes | str | dict[str, Any] | None = None
    location: str = ""
    interval: float = 1.0
    size: int = 0
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        return method == self.method and re.fullmatch(self.path, path) is not None


@dataclass
class Entry:
    method: str
    path: str
    key: bool  # the request carried an X-API-Key header
    action: str  # "forwarded" or the rule's action
    status: int | None = None
    at: float = field(default_factory=time.monotonic)


class HostileProxy:
    """The stand-in: ``base_url`` goes into the daemon's config instead of the emulator's."""

    def __init__(self, upstream: str):
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.upstream_origin = f"{parts.scheme}://{parts.netloc}"
        self.rules: list[Rule] = []
        self.log: list[Entry] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_any(self) -> None:
                proxy.handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_any

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.base_url = self.origin + urlsplit(upstream).path
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HostileProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add(self, *rules: Rule) -> None:
        with self._lock:
            self.rules.extend(rules)

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def entries(self, method: str | None = None, path: str = ".*") -> list[Entry]:
        with self._lock:
            return [
                e
                for e in self.log
                if (method is None or e.method == method) and re.fullmatch(path, e.path)
            ]

    # -- one request ----------------------------------------------------------------

    def _rule_for(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.hits += 1
                    return rule
        return None

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        path = urlsplit(handler.path).path
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        rule = self._rule_for(handler.command, path)
        entry = Entry(handler.command, path, "X-API-Key" in handler.headers, "forwarded")
        with self._lock:
            self.log.append(entry)
        if rule is not None:
            entry.action = rule.action
        try:
            if rule is not None and rule.action in ("status", "redirect", "endless", "huge"):
                entry.status = self._answer_alone(handler, rule)
                return
            status, headers, answer = self._forward(handler, body)
            entry.status = status
            if rule is None:
                self._send(handler, status, headers, answer)
            elif rule.action == "replace":
                entry.status = rule.status
                self._send(handler, rule.status, {}, _bytes(rule.body))
            elif rule.action == "gzip":
                packed = gzip.compress(answer)
                self._send(handler, status, {**headers, "Content-Encoding": "gzip"}, packed)
            elif rule.action == "trickle":
                self._trickle(handler, status, headers, answer, rule.interval)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _forward(
        self, handler: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            skip = ("host", "content-length", "connection", "accept-encoding")
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in skip}
            if "json" in handler.headers.get("Content-Type", ""):
                # file URLs given to create an edit name the proxy: the emulator's own
                body = body.replace(self.origin.encode(), self.upstream_origin.encode())
            connection.request(handler.command, handler.path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            kept = ("content-type", "content-range", "retry-after", "etag", "accept-ranges")
            out = {k: v for k, v in response.getheaders() if k.lower() in kept}
            if "json" in out.get("Content-Type", out.get("content-type", "")):
                # signed URLs point at the emulator: make them point here
                answer = answer.replace(self.upstream_origin.encode(), self.origin.encode())
            return response.status, out, answer
        finally:
            connection.close()

    def _answer_alone(self, handler: BaseHTTPRequestHandler, rule: Rule) -> int:
        if rule.action == "status":
            self._send(handler, rule.status, {}, _bytes(rule.body))
            return rule.status
        if rule.action == "redirect":
            # to a path here, to a URL, or (no location) to the very same URL again
            location = rule.location or handler.path
            if "://" not in location:
                location = self.origin + location
            self._send(handler, 307, {"Location": location}, b"")
            return 307
        if rule.action == "huge":
            self._send(handler, 200, {"Content-Type": "application/json"}, _huge(rule.size))
            return 200
        # endless: a body without a length, until the client hangs up
        handler.send_response(200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Connection", "close")
        handler.end_headers()
        block = b"\0" * 65536
        try:
            while True:
                handler.wfile.write(block)
        except OSError:
            pass
        handler.close_connection = True
        return 200

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes
    ) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)

    @staticmethod
    def _trickle(
        handler: BaseHTTPRequestHandler,
        status: int,
        headers: dict[str, str],
        body: bytes,
        interval: float,
    ) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.flush()
        for byte in _each_byte(body):
            handler.wfile.write(byte)
            handler.wfile.flush()
            time.sleep(interval)


def _bytes(body: bytes | str | dict[str, Any] | None) -> bytes:
    if body is None:
        return b""
    if isinstance(body, dict):
        return json.dumps(body).encode()
    return body.encode() if isinstance(body, str) else body


def _huge(size: int) -> bytes:
    """A valid JSON status answer of about ``size`` bytes."""
    filler = "x" * max(0, size - 60)
    return json.dumps({"status": "PENDING", "result": {"note": filler}}).encode()


def _each_byte(body: bytes) -> Iterator[bytes]:
    for i in range(len(body)):
        yield body[i : i + 1]
