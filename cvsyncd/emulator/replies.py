"""The bodies the emulator answers with: JSON, API errors in every documented shape, S3 XML.

The real API is inconsistent about error bodies (``{"error": {...}}``, ``{"detail": "..."}``,
``{"detail": {"error": {...}}}``, ``{"message": "..."}``, a flat ``{"message", "code"}``,
and plain text from the layers in front of it); a client must read them all, so the
emulator can answer in any one of them, rotate through them (``mixed``), or pick one per
answer (``varied``, seeded: see variants.py). Storage errors come as S3 XML, and a 502 as
the HTML page a proxy would send.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from collections.abc import Iterable
from typing import Any
from xml.sax.saxutils import escape

from cvsyncd.emulator.httpio import Response
from cvsyncd.emulator.variants import POINTS, Variants

SHAPES = POINTS["error-style"]  # error, detail, detail-error, message, flat, text
ERROR_STYLES = (*SHAPES, "mixed", "varied")
_ROTATION = ("error", "detail", "detail-error", "message")

JSON_TYPE = "application/json"


def json_response(status: int, data: Any, headers: Iterable[tuple[str, str]] = ()) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(status, [("Content-Type", JSON_TYPE), *headers], body)


def _shape(style: str, code: str, message: str) -> dict[str, Any]:
    if style == "detail":
        return {"detail": message}
    if style == "detail-error":
        return {"detail": {"error": {"code": code, "message": message}}}
    if style == "message":
        return {"message": message}
    if style == "flat":
        return {"message": message, "code": code}
    return {"error": {"code": code, "message": message}}


class ErrorBodies:
    """Makes API error responses in the configured style.

    ``mixed`` rotates through the four JSON shapes of the docs in order; ``varied`` picks
    any of the six shapes per answer from ``variants`` (plain text included).
    """

    def __init__(self, style: str, variants: Variants | None = None):
        if style not in ERROR_STYLES:
            raise ValueError(f"unknown error style {style!r} — valid: {', '.join(ERROR_STYLES)}")
        self._style = style
        self._variants = variants or Variants(None)
        self._rotation = itertools.cycle(_ROTATION)
        self._lock = threading.Lock()

    def _next_style(self) -> str:
        if self._style == "varied":
            return self._variants.pick("error-style")
        if self._style != "mixed":
            return self._style
        with self._lock:
            return next(self._rotation)

    def response(
        self, status: int, code: str, message: str, headers: Iterable[tuple[str, str]] = ()
    ) -> Response:
        style = self._next_style()
        if style == "text":
            body = f"{message}\n".encode()
            return Response(status, [("Content-Type", "text/plain; charset=utf-8"), *headers], body)
        return json_response(status, _shape(style, code, message), headers)


def s3_error(status: int, code: str, message: str, resource: str) -> Response:
    """Return an S3-style XML error (``<Error><Code>…``), as R2 and S3 answer."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<Resource>{escape(resource)}</Resource><RequestId>{uuid.uuid4().hex[:16]}</RequestId>"
        "</Error>"
    ).encode()
    return Response(status, [("Content-Type", "application/xml")], body)


def bad_gateway() -> Response:
    """Return the HTML page a reverse proxy sends when the service behind it is down."""
    body = (
        b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n"
        b"<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
    )
    return Response(502, [("Content-Type", "text/html")], body)


def malformed_json() -> Response:
    """Return a 200 whose JSON body is cut off: a broken proxy or a half-written cache."""
    return Response(200, [("Content-Type", JSON_TYPE)], b'{"status": "SUCCESS", "result": {"vid')
