"""The emulator's own control endpoints under ``/_emulator/`` (not part of the API).

A test that runs the daemon as a subprocess cannot call ``Emulator.set_faults``; it changes
the fault settings here instead, and reads the edits the emulator knows. Only loopback
clients may use these paths; they need no API key and are never subject to faults.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from cvsyncd.emulator.faults import FaultInjector
from cvsyncd.emulator.httpio import BodyError, Exchange, Response
from cvsyncd.emulator.replies import json_response
from cvsyncd.emulator.state import State
from cvsyncd.emulator.variants import Variants
from cvsyncd.urls import is_loopback

ADMIN_BODY_LIMIT = 64 * 1024


def _problem(status: int, message: str) -> Response:
    return json_response(status, {"error": {"code": "ADMIN_ERROR", "message": message}})


class AdminEndpoints:
    """Serves ``/_emulator/faults`` and ``/_emulator/state``."""

    def __init__(self, faults: FaultInjector, state: State, variants: Variants | None = None):
        self._faults = faults
        self._state = state
        self._variants = variants or Variants(None)

    def refuse_remote(self, exchange: Exchange) -> Response | None:
        if is_loopback(exchange.client_host):
            return None
        return _problem(403, "the /_emulator/ endpoints answer loopback clients only")

    def faults(self, exchange: Exchange, params: Mapping[str, str]) -> Response:
        """GET: the fault settings. POST a JSON object with some fields: change them."""
        if exchange.method == "POST":
            try:
                changes = json.loads(exchange.read_body(ADMIN_BODY_LIMIT) or b"{}")
            except (BodyError, ValueError) as error:
                return _problem(400, f"body must be a JSON object: {error}")
            if not isinstance(changes, dict):
                return _problem(400, "body must be a JSON object")
            try:
                self._faults.update(changes)
            except (TypeError, ValueError) as error:
                return _problem(400, str(error))
        exchange.processed = True
        return json_response(200, self._faults.settings.to_json())

    def state(self, exchange: Exchange, params: Mapping[str, str]) -> Response:
        """GET: every edit and upload the emulator holds, the remaining credit, and which
        answer shapes were served (``variants``)."""
        exchange.processed = True
        report = {**self._state.snapshot(), "variants": self._variants.report()}
        report["vary_seed"] = self._variants.seed
        return json_response(200, report)
