"""The Cleanvoice API endpoints: upload URL, create/poll/delete edits, account.

Each method takes the request (``Exchange``) and returns a ``Response``; the router around
them has already checked the API key and decided about faults. Status codes, error codes
and body shapes follow API-CONTRACT.md.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, unquote

from cvsyncd.emulator.httpio import BodyError, BodyTooLarge, Exchange, IncompleteBody, Response
from cvsyncd.emulator.processing import Success
from cvsyncd.emulator.ratelimit import SlidingWindowLimiter
from cvsyncd.emulator.replies import ErrorBodies, json_response
from cvsyncd.emulator.signing import UrlSigner
from cvsyncd.emulator.state import RESULT_PREFIX, UPLOAD_PREFIX, InsufficientCredits, State
from cvsyncd.emulator.vocabulary import Problem, parse_edit_request

JSON_LIMIT = 1024 * 1024
MAX_FILENAME = 1024
URL_LIFETIME = 3600


def _without_query(url: Any) -> Any:
    return url.split("?", 1)[0].split("#", 1)[0] if isinstance(url, str) else url


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _loggable_input(body: Any) -> tuple[Any, Any]:
    """Return the files and config of a create body for the log, with no query strings."""
    data = body.get("input") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        return None, None
    files = data.get("files")
    if isinstance(files, list):
        files = [_without_query(url) for url in files]
    config = data.get("config")
    if isinstance(config, dict) and "signed_url" in config:
        config = {**config, "signed_url": _without_query(config["signed_url"])}
    return files, config


class ApiEndpoints:
    """Answers the documented API calls for one emulator."""

    def __init__(
        self,
        state: State,
        signer: UrlSigner,
        errors: ErrorBodies,
        api_key: str,
        limiter: SlidingWindowLimiter | None,
        origin: Callable[[Exchange], str],
    ):
        self._state = state
        self._signer = signer
        self._errors = errors
        self._api_key = api_key
        self._limiter = limiter
        self._origin = origin

    # -- guards ----------------------------------------------------------------------------

    def key_status(self, exchange: Exchange) -> str:
        """Return how the request presents the API key: "ok", "missing" or "wrong"."""
        key = exchange.headers.get("X-API-Key")
        if key is None:
            return "missing"
        return "ok" if hmac.compare_digest(key.encode(), self._api_key.encode()) else "wrong"

    def authenticate(self, exchange: Exchange) -> Response | None:
        """Record how the request authenticated; return a 401 unless the key is right."""
        exchange.auth = self.key_status(exchange)
        if exchange.auth == "missing":
            message = "Missing API key: send the X-API-Key header"
            return self._errors.response(401, "INVALID_API_KEY", message)
        if exchange.auth == "wrong":
            return self._errors.response(401, "INVALID_API_KEY", "Invalid API key")
        return None

    def _over_limit(self, bucket: str) -> Response | None:
        if self._limiter is None:
            return None
        wait = self._limiter.admit(self._api_key, bucket)
        if wait is None:
            return None
        message = f"Rate limit exceeded, retry in {wait} s"
        return self._errors.response(429, "E9001", message, [("Retry-After", str(wait))])

    # -- presigned URLs --------------------------------------------------------------------

    def _presigned(self, exchange: Exchange, method: str, folder: str, name: str) -> str:
        """Return a presigned URL for ``folder`` (safe characters only) + ``name``."""
        query = self._signer.sign(method, folder + name, expires=URL_LIFETIME)
        return f"{self._origin(exchange)}{folder}{quote(name, safe='')}?{query}"

    def _result_url(self, exchange: Exchange, edit_id: str, name: str) -> str:
        return self._presigned(exchange, "GET", f"{RESULT_PREFIX}{edit_id}/", name)

    # -- endpoints -------------------------------------------------------------------------

    def upload(self, exchange: Exchange, params: Mapping[str, str]) -> Response:
        """``POST /v2/upload?filename=NAME`` → a presigned PUT URL for a new object."""
        if (refusal := self._over_limit("submit")) is not None:
            return refusal
        filename = exchange.query_value("filename")
        if filename is None or not filename.strip():
            return self._errors.response(
                400, "BAD_REQUEST", "filename is required, e.g. ?filename=ep1.mp3"
            )
        if len(filename) > MAX_FILENAME or any(ord(c) < 32 for c in filename):
            return self._errors.response(
                400, "BAD_REQUEST", "filename is too long or has control characters"
            )
        exchange.notes["filename"] = filename
        upload = self._state.new_upload(filename)
        exchange.processed = True
        url = self._presigned(exchange, "PUT", f"{UPLOAD_PREFIX}{upload.upload_id}/", filename)
        return json_response(200, {"signedUrl": url})

    def _read_json(self, exchange: Exchange) -> Any:
        content_type = exchange.headers.get("Content-Type", "application/json")
        if "json" not in content_type.lower():
            raise ValueError("the body must be JSON (Content-Type: application/json)")
        raw = exchange.read_body(JSON_LIMIT)
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)

    def create(self, exchange: Exchange, params: Mapping[str, str]) -> Response:
        """``POST /v2/edits`` → validate strictly, charge credits, start an edit."""
        if (refusal := self._over_limit("submit")) is not None:
            return refusal
        try:
            body = self._read_json(exchange)
        except BodyTooLarge:
            return self._errors.response(413, "FILE_TOO_LARGE", "request body is too large")
        except IncompleteBody:
            return self._errors.response(400, "BAD_REQUEST", "request body is incomplete")
        except (BodyError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError too
            return self._errors.response(
                400, "BAD_REQUEST", f"request body is not valid JSON: {error}"
            )
        files, config = _loggable_input(body)
        if files is not None:
            exchange.notes["files"] = files
        if config is not None:
            exchange.notes["config"] = config
        request = parse_edit_request(body)
        if isinstance(request, list):
            return self._invalid(request)
        try:
            edit = self._state.create_edit(request, forced_failure=exchange.fault == "failure")
        except InsufficientCredits as error:
            message = (
                f"Insufficient credits: this edit needs {error.needed_seconds / 60:.1f} minutes, "
                f"{max(error.remaining_seconds, 0) / 60:.1f} minutes left"
            )
            return self._errors.response(403, "INSUFFICIENT_CREDITS", message)
        exchange.notes["edit_id"] = edit.edit_id
        exchange.processed = True
        return json_response(200, {"id": edit.edit_id})

    def _invalid(self, problems: list[Problem]) -> Response:
        message = "Invalid request: " + "; ".join(str(problem) for problem in problems)
        return self._errors.response(422, "VALIDATION_ERROR", message)

    def get(self, exchange: Exchange, params: Mapping[str, str]) -> Response:
        """``GET /v2/edits/{id}`` → status and result; unknown ids are PENDING, not 404."""
        if (refusal := self._over_limit("poll")) is not None:
            return refusal
        edit_id = unquote(params["edit_id"])
        exchange.notes["edit_id"] = edit_id
        poll = self._state.poll_edit(edit_id)
        exchange.processed = True
        if poll is None:
            return json_response(200, {"status": "PENDING", "result": None, "task_id": edit_id})
        result = poll.result
        if isinstance(result, Success):
            result = self._render_success(exchange, edit_id, result)
        return json_response(200, {"status": poll.status, "result": result, "task_id": edit_id})

    def _render_success(self, exchange: Exchange, edit_id: str, success: Success) -> dict[str, Any]:
        fields = success.fields
        merged = [self._result_url(exchange, edit_id, success.merged)] if success.merged else []
        markers: dict[str, str] | list[str] = []
        if success.markers:
            markers = {"timeline_audacity": self._result_url(exchange, edit_id, success.markers)}
        return {
            "video": fields["video"],
            "filename": fields["filename"],
            "download_url": self._result_url(exchange, edit_id, success.download),
            "statistics": fields["statistics"],
            "transcription": fields["transcription"],
            "summarization": fields["summarization"],
            "social_content": fields["social_content"],
            "merged_audio_url": merged,
            "timestamps_markers_urls": markers,
            "waveform_result": fields["waveform_result"],
        }

    def delete(self, exchange: Exchange, params: Mapping[str, str]) -> Response:
        """``DELETE /v2/edits/{id}`` → remove the edit and its files now (idempotent)."""
        edit_id = unquote(params["edit_id"])
        exchange.notes["edit_id"] = edit_id
        exchange.processed = self._state.delete_edit(edit_id)
        return json_response(200, {"message": f"Edit {edit_id} and its files were deleted"})

    def account(self, exchange: Exchange, params: Mapping[str, str]) -> Response:
        """``GET /v1/account`` (also ``/v2/account``) → the remaining credit, in hours."""
        hours = round(max(self._state.remaining_seconds(), 0) / 3600, 6)
        exchange.processed = True
        return json_response(
            200,
            {
                "credit": {"total": hours, "subscription": hours, "payg": 0.0},
                "meta": {"emulator": True, "credit_unit": "hours"},
                "credits_remaining": hours,
                "account_type": "emulator",
            },
        )
