"""The object storage behind the presigned URLs: the upload PUT and result downloads.

It behaves like an S3-compatible bucket (the real service uses Cloudflare R2): it needs no
API key, only a valid, unexpired signature for this method and path; errors are S3 XML.
Uploads are streamed to disk in blocks and become visible only once complete, so a client
that dies mid-PUT leaves nothing that looks like a finished object. Downloads are streamed
from disk and honour single ``Range`` requests.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from collections.abc import Mapping
from email.utils import formatdate
from urllib.parse import unquote

from cvsyncd.emulator.httpio import BodyError, Exchange, FileSlice, IncompleteBody, Response
from cvsyncd.emulator.replies import s3_error
from cvsyncd.emulator.signing import UrlSigner, Verdict
from cvsyncd.emulator.state import RESULT_PREFIX, State, parse_upload_path

_AUTH_WORDS = {Verdict.OK: "ok", Verdict.MISSING: "missing"}
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class RangeNotSatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Return the (first, last) bytes a ``Range`` header asks for, or None for the whole file.

    Only one range is supported (like S3); anything unparsable is ignored as RFC 9110 says.
    Raise RangeNotSatisfiable when the range lies outside the file.
    """
    match = _RANGE.fullmatch(header.strip()) if header else None
    if match is None or not (match[1] or match[2]):
        return None
    if not match[1]:  # "bytes=-N": the last N bytes
        suffix = int(match[2])
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - suffix), size - 1
    first = int(match[1])
    last = int(match[2]) if match[2] else size - 1
    if match[2] and last < first:
        return None
    if first >= size:
        raise RangeNotSatisfiable
    return first, min(last, size - 1)


class StorageEndpoints:
    """Serves ``/storage/...`` for one emulator."""

    def __init__(self, state: State, signer: UrlSigner):
        self._state = state
        self._signer = signer

    def signature_status(self, exchange: Exchange) -> str:
        """Return how the request's presigned query checks out: "ok", "missing" or "wrong"."""
        verdict = self._signer.verify(exchange.method, unquote(exchange.path), exchange.query)
        return _AUTH_WORDS.get(verdict, "wrong")

    def _refuse_signature(self, exchange: Exchange, method: str) -> Response | None:
        verdict = self._signer.verify(method, unquote(exchange.path), exchange.query)
        exchange.auth = _AUTH_WORDS.get(verdict, "wrong")
        if verdict is Verdict.OK:
            return None
        if verdict is Verdict.EXPIRED:
            return s3_error(403, "AccessDenied", "Request has expired", exchange.path)
        if verdict is Verdict.MISSING:
            return s3_error(403, "AccessDenied", "Access Denied", exchange.path)
        message = (
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method."
        )
        return s3_error(403, "SignatureDoesNotMatch", message, exchange.path)

    def put(self, exchange: Exchange, params: Mapping[str, str]) -> Response:
        """Store the body as the object of a presigned upload URL."""
        if (refusal := self._refuse_signature(exchange, "PUT")) is not None:
            return refusal
        target = parse_upload_path(exchange.path)
        if target is None:
            return s3_error(403, "AccessDenied", "Access Denied", exchange.path)
        if exchange.framing_error is not None:
            return s3_error(400, "InvalidRequest", exchange.framing_error, exchange.path)
        if exchange.content_length is None and "Transfer-Encoding" not in exchange.headers:
            message = "You must provide the Content-Length HTTP header."
            return s3_error(411, "MissingContentLength", message, exchange.path)
        upload_id, filename = target
        partial = self._state.partial_upload_path(upload_id)
        digest = hashlib.md5(usedforsecurity=False)
        try:
            with partial.open("wb") as sink:
                for block in exchange.iter_body():
                    digest.update(block)
                    sink.write(block)
        except BodyError as error:
            partial.unlink(missing_ok=True)
            code = "IncompleteBody" if isinstance(error, IncompleteBody) else "InvalidRequest"
            return s3_error(
                400, code, f"The request body could not be read: {error}", exchange.path
            )
        etag = f'"{digest.hexdigest()}"'
        self._state.commit_upload(upload_id, filename, partial, exchange.bytes_in, etag)
        exchange.processed = True
        return Response(200, [("ETag", etag)])

    def download(self, exchange: Exchange, params: Mapping[str, str]) -> Response:
        """Serve a result file, whole or one byte range."""
        if (refusal := self._refuse_signature(exchange, exchange.method)) is not None:
            return refusal
        edit_id, _, name = exchange.path.removeprefix(RESULT_PREFIX).partition("/")
        path = None
        if exchange.path.startswith(RESULT_PREFIX) and name:
            exchange.notes["edit_id"] = unquote(edit_id)
            path = self._state.result_file(unquote(edit_id), unquote(name))
        if path is None:
            return s3_error(404, "NoSuchKey", "The specified key does not exist.", exchange.path)
        stat = path.stat()
        headers = [
            ("Content-Type", mimetypes.guess_type(path.name)[0] or "application/octet-stream"),
            ("Accept-Ranges", "bytes"),
            ("ETag", f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'),
            ("Last-Modified", formatdate(stat.st_mtime, usegmt=True)),
        ]
        try:
            wanted = parse_range(exchange.headers.get("Range"), stat.st_size)
        except RangeNotSatisfiable:
            refusal = s3_error(
                416, "InvalidRange", "The requested range is not satisfiable", exchange.path
            )
            refusal.headers.append(("Content-Range", f"bytes */{stat.st_size}"))
            return refusal
        exchange.processed = True
        if wanted is None:
            return Response(200, headers, file=FileSlice(path, 0, stat.st_size))
        first, last = wanted
        headers.append(("Content-Range", f"bytes {first}-{last}/{stat.st_size}"))
        return Response(206, headers, file=FileSlice(path, first, last - first + 1))
