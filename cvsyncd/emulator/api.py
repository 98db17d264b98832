"""The Cleanvoice API endpoints: upload URL, create/poll/delete edits, account.

Each method takes the request (``Exchange``) and returns a ``Response``; the router around
them has already checked the API key and decided about faults. Status codes, error codes
and body shapes follow the docs and the official SDKs (docs/cleanvoice-api.md); where
those show several shapes, ``Variants`` picks one (variants.py).
"""

from __future__ import annotations

import hmac
import json
import threading
import uuid
from collections.abc import Callable, Mapping
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from cvsyncd.emulator.httpio import BodyError, BodyTooLarge, Exchange, IncompleteBody, Response
from cvsyncd.emulator.processing import Success
from cvsyncd.emulator.ratelimit import SlidingWindowLimiter
from cvsyncd.emulator.replies import ErrorBodies, json_response
from cvsyncd.emulator.signing import UrlSigner
from cvsyncd.emulator.state import RESULT_PREFIX, UPLOAD_PREFIX, InsufficientCredits, State
from cvsyncd.emulator.variants import Variants
from cvsyncd.emulator.vocabulary import Problem, parse_edit_request

JSON_LIMIT = 1024 * 1024
MAX_FILENAME = 1024
URL_LIFETIME = 3600
# named in one part of the docs, refused by its error example and the Python SDK's check
UNCERTAIN_FORMATS = frozenset({".aac", ".ogg", ".opus", ".oga"})
NOT_ASKED = ("transcription", "summarization", "social_content", "merged_audio_url")


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
        variants: Variants | None = None,
    ):
        self._state = state
        self._signer = signer
        self._errors = errors
        self._api_key = api_key
        self._limiter = limiter
        self._origin = origin
        self._variants = variants or Variants(None)
        self._shapes: dict[str, dict[str, str]] = {}  # edit id → the shapes of its result
        self._shapes_lock = threading.Lock()

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
        return json_response(200, self._extra({"signedUrl": url}))

    def _extra(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body, with keys no client knows when the variant says so."""
        if self._variants.pick("extra-keys") == "unknown":
            body = {**body, "request_id": uuid.uuid4().hex, "meta": {"emulator": True}}
        return body

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
        refusal = self._refuse_inputs(exchange, request.files)
        if refusal is not None:
            return refusal
        try:
            edit = self._state.create_edit(request, forced_failure=exchange.fault == "failure")
        except InsufficientCredits as error:
            message = (
                f"Insufficient credits: this edit needs {error.needed_seconds / 60:.1f} minutes, "
                f"{max(error.remaining_seconds, 0) / 60:.1f} minutes left"
            )
            # 402, as the official SDK's own tests expect from the live service
            return self._errors.response(402, "INSUFFICIENT_CREDITS", message)
        exchange.notes["edit_id"] = edit.edit_id
        exchange.processed = True
        return json_response(200, self._extra({"id": edit.edit_id}))

    def _refuse_inputs(self, exchange: Exchange, files: tuple[str, ...]) -> Response | None:
        """A refusal at create time for inputs the service cannot use, in varied mode.

        The vendor's own integration tests expect a create with a file URL the service
        cannot fetch to fail at once; the emulator can fetch nothing but its own uploads.
        Canonical mode accepts such URLs and fails the edit when it is processed.
        """
        if not self._variants.varied:
            return None
        own = urlsplit(self._origin(exchange)).netloc
        for url in files:
            parts = urlsplit(url)
            if parts.netloc != own:
                message = f"Could not fetch the input file {url.split('?')[0]}"
                return self._errors.response(400, "INVALID_FILE_URL", message)
            found = self._state.uploaded_name(url)
            if found is None and self._variants.pick("missing-upload") == "refuse-at-create":
                message = f"Upload not found: {url.split('?')[0]}"
                return self._errors.response(404, "UPLOAD_NOT_FOUND", message)
            suffix = PurePosixPath(found or parts.path).suffix.lower()
            if suffix in UNCERTAIN_FORMATS and self._variants.pick("uncertain-format") == "refuse":
                message = "File format not supported. Please use MP3, WAV, M4A, or FLAC."
                return self._errors.response(422, "INVALID_FILE_FORMAT", message)
        return None

    def _invalid(self, problems: list[Problem]) -> Response:
        message = "Invalid request: " + "; ".join(str(problem) for problem in problems)
        return self._errors.response(422, "VALIDATION_ERROR", message)

    def get(self, exchange: Exchange, params: Mapping[str, str]) -> Response:
        """``GET /v2/edits/{id}`` → status and result; unknown ids are PENDING, not 404."""
        if (refusal := self._over_limit("poll")) is not None:
            return refusal
        edit_id = unquote(params["edit_id"])
        exchange.notes["edit_id"] = edit_id
        poll = self._state.poll_edit(edit_id, self._results_held_back)
        exchange.processed = True
        if poll is None:
            return json_response(200, self._running(edit_id, "PENDING", None))
        result = poll.result
        if poll.status == "FAILURE":
            return json_response(200, self._failure(edit_id, result))
        if isinstance(result, Success):
            body = {"status": "SUCCESS", "result": self._render_success(exchange, edit_id, result)}
            return json_response(200, self._extra({**body, "task_id": edit_id}))
        return json_response(200, self._running(edit_id, poll.status, result))

    def _results_held_back(self) -> int:
        """How many polls after completion answer SUCCESS without a result (varied mode)."""
        return int(self._variants.pick("success-without-result"))

    def _running(self, edit_id: str, status: str, result: Any) -> dict[str, Any]:
        """A poll before the end: the result documented for the stage, or null, {}, none."""
        body: dict[str, Any] = {"status": status, "task_id": edit_id}
        shape = self._variants.pick("running-result")
        if shape != "absent":
            body["result"] = {"documented": result, "null": None, "empty": {}}[shape]
        return self._extra(body)

    def _failure(self, edit_id: str, result: Any) -> dict[str, Any]:
        """A FAILURE poll, its reason in one of the shapes clients have been shown."""
        message = result.get("message") if isinstance(result, dict) else None
        text = str(message or "Processing failed")
        shape = self._variants.pick("failure-shape")
        body: dict[str, Any] = {"status": "FAILURE", "task_id": edit_id, "result": None}
        if shape == "message":
            body["result"] = {"message": text}
        elif shape == "error":
            body["result"] = {"error": {"code": "PROCESSING_FAILED", "message": text}}
        elif shape == "detail":
            body["result"] = {"detail": text}
        elif shape == "beside":
            body["error"] = {"code": "PROCESSING_FAILED", "message": text}
        return self._extra(body)

    def _shapes_of(self, edit_id: str) -> dict[str, str]:
        """The shapes one edit's result takes, picked once: the same on every poll."""
        with self._shapes_lock:
            shapes = self._shapes.get(edit_id)
        if shapes is None:
            points = ("not-asked", "social-shape", "markers-shape", "download-extension")
            shapes = {p: self._variants.pick(p) for p in points}
            shapes["filename-extension"] = self._variants.pick("filename-extension")
            shapes["summaries"] = self._variants.pick("summaries")
            with self._shapes_lock:
                shapes = self._shapes.setdefault(edit_id, shapes)
        return shapes

    def _render_success(self, exchange: Exchange, edit_id: str, success: Success) -> dict[str, Any]:
        fields = success.fields
        shapes = self._shapes_of(edit_id)

        def url(name: str, keep_extension: bool = True) -> str:
            shown = name if keep_extension else PurePosixPath(name).stem
            return self._result_url(exchange, edit_id, shown)

        download = url(success.download, shapes["download-extension"] == "with")
        filename = fields["filename"]
        if shapes["filename-extension"] == "with":
            filename = success.download
        result: dict[str, Any] = {
            "video": fields["video"],
            "filename": filename,
            "download_url": download,
            "statistics": fields["statistics"],
            "transcription": fields["transcription"],
            "summarization": _summaries(fields["summarization"], shapes["summaries"]),
            "social_content": _social(fields["social_content"], shapes["social-shape"]),
            "merged_audio_url": [url(success.merged)] if success.merged else [],
            "timestamps_markers_urls": self._markers(success, url, shapes["markers-shape"]),
            "waveform_result": fields["waveform_result"],
        }
        for key in (*NOT_ASKED, "timestamps_markers_urls"):
            if result[key] in ([], None, {}):
                not_asked = shapes["not-asked"]
                if not_asked == "absent":
                    del result[key]
                elif not_asked == "null" and key != "social_content":  # the SDK needs a list
                    result[key] = None
                else:
                    result[key] = []
        if self._variants.varied and shapes["social-shape"] != "mapping":
            result["cleanvoice_version"] = "emulated"  # an unknown key in the result
        return result

    @staticmethod
    def _markers(
        success: Success, url: Callable[..., str], shape: str
    ) -> dict[str, str] | list[str]:
        if not success.markers:
            return []
        if shape == "mapping":
            return {"timeline_audacity": url(success.markers)}
        if shape == "list-no-extension":
            return [url(success.markers, False)]
        listed = [url(success.markers)]
        if shape == "list-with-json" and success.timestamps_json:
            listed.append(url(success.timestamps_json))
        return listed

    def delete(self, exchange: Exchange, params: Mapping[str, str]) -> Response:
        """``DELETE /v2/edits/{id}`` → remove the edit and its files now (idempotent)."""
        edit_id = unquote(params["edit_id"])
        exchange.notes["edit_id"] = edit_id
        exchange.processed = self._state.delete_edit(edit_id)
        return json_response(200, {"message": f"Edit {edit_id} and its files were deleted"})

    def account(self, exchange: Exchange, params: Mapping[str, str]) -> Response:
        """``GET /v1/account`` (also ``/v2/account``) → the remaining credit, in hours.

        The body takes the docs' v1 shape (``credit.total``), the Python SDK's
        ``AccountInfo`` shape (``credits_remaining``, ``user``, ``account``), or one with
        no balance at all.
        """
        hours = round(max(self._state.remaining_seconds(), 0) / 3600, 6)
        exchange.processed = True
        shape = self._variants.pick("account-shape")
        body: dict[str, Any]
        if shape == "sdk":
            body = {
                "credits_remaining": hours,
                "user": "emulator@localhost",
                "account": {"type": "emulator"},
            }
        elif shape == "no-balance":
            body = {"user": {"email": "emulator@localhost"}, "account": {"type": "emulator"}}
        else:
            body = {
                "credit": {"total": hours, "subscription": hours, "payg": 0.0},
                "meta": {"emulator": True, "credit_unit": "hours"},
                "credits_remaining": hours,
                "account_type": "emulator",
            }
        return json_response(200, self._extra(body))


def _summaries(summary: Any, shape: str) -> Any:
    """``summaries`` as a list, or as the empty string the backend sends as a fallback."""
    if isinstance(summary, dict) and shape == "empty-string":
        return {**summary, "summaries": ""}
    return summary


def _social(social: Any, shape: str) -> Any:
    """Social posts as the docs' mapping, a mapping with more posts, or a list."""
    if not isinstance(social, dict) or not social:
        return social
    if shape == "mapping-more":
        return {**social, "instagram": "Emulated Instagram caption from the cvsyncd emulator."}
    if shape == "list-text":
        return list(social.values())
    if shape == "list-objects":
        return [{"platform": name, "content": text} for name, text in social.items()]
    return social
