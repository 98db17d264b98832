"""An alert receiver on 127.0.0.1 for the alert tests (unit and end-to-end): a JSON
webhook, as Apprise's ``json://`` service posts to. The ``receiver`` fixture is in
tests/conftest.py."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """A JSON webhook receiver on 127.0.0.1: it records every message; it can answer 500
    to the next ``fail`` requests, or hold every answer until ``release`` is set."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.requests = 0
        self.fail = 0
        self.release = threading.Event()
        self.release.set()
        self.waiting = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests += 1
                receiver.waiting += 1
                receiver.release.wait(30)
                receiver.waiting -= 1
                if receiver.fail > 0:
                    receiver.fail -= 1
                    self.send_response(500)
                else:
                    receiver.messages.append(json.loads(body))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/cvsyncd"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
