"""The Cleanvoice HTTP client: requests, results, and what every failure means.

One class, ``CleanvoiceClient``, owns the kept-alive connections to the API host
(:class:`~cvsyncd.cleanvoice.calls.ApiConnections`), which carry the ``X-API-Key`` header
and never follow redirects (a redirect would carry the key elsewhere), and a
:class:`~cvsyncd.cleanvoice.transfers.Transfers` for signed upload and download URLs,
which carries no credentials at all. Every failure is classified here, once,
into the kinds of ``errors.py``:

- transient: connection trouble, timeouts, 408/429/5xx — try again later;
- account: 401/403 from the API, 402, or any refusal that says the credit ran out — the
  key or the account is the problem, never the recording;
- permanent: the API refused this request (400/404/413/422 …);
- ambiguous: a create-edit was sent but its outcome is unknown (it may have been billed).

Every call has an overall deadline and a cap on what is read of its answer; the content of
answers is read by ``answers.py``, whatever their shape.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlencode, urlsplit

import structlog

from cvsyncd import __version__
from cvsyncd import events as ev
from cvsyncd.cleanvoice.answers import RUNNING_STATUSES as RUNNING_STATUSES
from cvsyncd.cleanvoice.answers import (
    EditStatus,
    error_message,
    parse_edit_status,
    plain,
    says_insufficient_credits,
)
from cvsyncd.cleanvoice.budget import RateLimiter
from cvsyncd.cleanvoice.calls import API_TIMEOUT as API_TIMEOUT
from cvsyncd.cleanvoice.calls import Answer, AnswerOverCap, ApiConnections, CallFailed
from cvsyncd.cleanvoice.transfers import (
    DEFAULT_MAX_DOWNLOAD_BYTES,
    ProgressCallback,
    Transfers,
)
from cvsyncd.cleanvoice.transfers import check_transfer_url as check_transfer_url
from cvsyncd.cleanvoice.transfers import file_url_of as file_url_of
from cvsyncd.config import CleanvoiceSettings
from cvsyncd.counters import Counters
from cvsyncd.errors import (
    AccountApiError,
    AmbiguousApiError,
    AnswerTooLarge,
    ApiError,
    PermanentApiError,
    TransientApiError,
)
from cvsyncd.redact import redact_url, scrub
from cvsyncd.retry import parse_retry_after

USER_AGENT = f"cvsyncd/{__version__}"
DEFAULT_MAX_ANSWER_BYTES = 32 * 1024**2  # about 75 hours of speech, transcribed word by word
API_DEADLINE = 120.0  # seconds one API call may take, answer included
MAX_EDIT_ID = 128
_EDIT_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_-]{{0,{MAX_EDIT_ID - 1}}}")
DEFAULT_LIMITS = {"submit": 30, "status": 300}  # requests a minute (docs/cleanvoice-api.md)


def is_edit_id(value: str) -> bool:
    """Whether ``value`` may be an edit id: the letters, digits, ``-`` and ``_`` of a UUID or
    similar, at most MAX_EDIT_ID of them. Nothing else ever goes into a URL path."""
    return _EDIT_ID.fullmatch(value) is not None


def client_for(settings: CleanvoiceSettings, api_key: str) -> CleanvoiceClient:
    """The client for a config's ``[cleanvoice]`` section: its URL, budgets and caps."""
    return CleanvoiceClient(
        settings.base_url,
        api_key,
        limits={
            "submit": settings.submit_requests_per_minute,
            "status": settings.status_requests_per_minute,
        },
        max_answer_bytes=int(settings.max_answer_mb * 2**20),
        max_download_bytes=int(settings.max_download_gb * 2**30),
        deadline=settings.request_deadline_seconds,
    )


class CleanvoiceClient:
    """Talks to the Cleanvoice API. Use as ``async with CleanvoiceClient(...) as client``."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        limits: Mapping[str, int] | None = None,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        deadline: float = API_DEADLINE,
        counters: Counters | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.counters = counters if counters is not None else Counters()  # for /metrics
        self._key = api_key
        self.max_answer_bytes = max_answer_bytes
        self.deadline = deadline
        self.limiter = RateLimiter(limits or DEFAULT_LIMITS)
        self.log = structlog.get_logger("cvsyncd.api")
        self._api = ApiConnections(
            {
                "X-API-Key": api_key,
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
                "Accept-Encoding": "gzip, deflate",
            }
        )
        self.transfers = Transfers(
            USER_AGENT,
            max_download_bytes=max_download_bytes,
            describe=self._describe,
            counters=self.counters,
        )

    async def __aenter__(self) -> CleanvoiceClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._api.close()
        await self.transfers.aclose()

    def set_api_key(self, api_key: str) -> None:
        """Use a new key from now on (the key file changed)."""
        self._key = api_key
        self._api.headers = {**self._api.headers, "X-API-Key": api_key}

    async def reserve(self, budget: str) -> None:
        """Take one request from ``budget`` now, for a call made with ``reserved=True``.

        A create-edit reserves its place before its intent is written, so that waiting for
        the budget never happens while the job's outcome is recorded as unknown.
        """
        await self.limiter.acquire(budget)

    @property
    def account_url(self) -> str:
        """``/v1/account``: the only v1 call, next to the v2 base URL."""
        root = self.base_url[: -len("/v2")] if self.base_url.endswith("/v2") else self.base_url
        return f"{root}/v1/account"

    # -- API calls ----------------------------------------------------------------------

    async def request_upload_url(self, filename: str) -> str:
        """Return a signed URL to PUT ``filename``'s bytes to."""
        query = urlencode({"filename": filename})
        body = await self._call("POST", f"{self.base_url}/upload?{query}", budget="submit")
        url = body.get("signedUrl") if isinstance(body, Mapping) else None
        if not isinstance(url, str) or not url:
            raise TransientApiError("the upload answer had no signedUrl")
        return url

    async def create_edit(
        self,
        files: Sequence[str],
        config: Mapping[str, Any],
        *,
        upload_type: str | None = None,
        template_id: int | None = None,
        reserved: bool = False,
    ) -> str:
        """Create an edit and return its id.

        ``template_id`` names a template saved in the Cleanvoice dashboard (it goes beside
        ``config``, in ``input``). Raise AmbiguousApiError when the request may have
        reached the API but no answer came back: the edit may exist (and be billed) or
        not. With ``reserved`` the request's place in the budget was taken beforehand
        (``reserve("submit")``).
        """
        payload: dict[str, Any] = {"files": list(files), "config": dict(config)}
        if upload_type:
            payload["upload_type"] = upload_type
        if template_id is not None:
            payload["template_id"] = template_id
        body = await self._call(
            "POST",
            f"{self.base_url}/edits",
            budget="submit",
            reserved=reserved,
            json_body={"input": payload},
            idempotent=False,
        )
        edit_id = body.get("id") if isinstance(body, Mapping) else None
        if not isinstance(edit_id, str) or not edit_id:
            raise AmbiguousApiError("the create-edit answer had no edit id")
        if not is_edit_id(edit_id):
            # the edit may well exist (and be billed), but this id goes into no URL
            raise AmbiguousApiError(
                "Cleanvoice answered with an edit id cvsyncd will not use in a URL "
                f"({plain(repr(edit_id), 80)}): an id is 1 to {MAX_EDIT_ID} letters, digits, "
                "'-' or '_'"
            )
        return edit_id

    async def get_edit(self, edit_id: str) -> EditStatus:
        """Poll an edit. Any odd answer (a redirect, 404, 410, a body without a status) is
        transient: a known edit is polled again until its retention runs out, never
        given up on one answer (docs/reliability.md, promise 17)."""
        try:
            body = await self._call("GET", self._edit_url(edit_id), budget="status")
        except AnswerTooLarge:
            raise
        except PermanentApiError as exc:
            raise TransientApiError(
                f"{exc.message} (an odd answer for an edit that exists; asking again)",
                status=exc.status,
            ) from None
        if not isinstance(body, Mapping) or not isinstance(body.get("status"), str):
            raise TransientApiError("the edit status answer had no status")
        return parse_edit_status(body)  # answers.py reads every documented shape

    async def delete_edit(self, edit_id: str) -> None:
        await self._call("DELETE", self._edit_url(edit_id), budget="status")

    def _edit_url(self, edit_id: str) -> str:
        if not is_edit_id(edit_id):
            raise PermanentApiError(f"refusing to use {plain(repr(edit_id), 80)} as an edit id")
        return f"{self.base_url}/edits/{quote(edit_id, safe='')}"

    async def account(self) -> Mapping[str, Any]:
        body = await self._call("GET", self.account_url, budget="status")
        if not isinstance(body, Mapping):
            raise TransientApiError("the account answer was not a JSON object")
        return body

    async def _call(
        self,
        method: str,
        url: str,
        *,
        budget: str,
        reserved: bool = False,
        idempotent: bool = True,
        json_body: Any = None,
    ) -> Any:
        """Send one API request within ``budget`` and return its JSON body, or raise a
        classified ApiError.

        The whole call, answer included, must end within ``self.deadline`` seconds (a
        server that trickles a byte every few seconds is a timeout like any other), and
        no more than ``self.max_answer_bytes`` of answer are read (AnswerTooLarge past it).
        """
        if not reserved:
            await self.limiter.acquire(budget)
        path = urlsplit(url).path
        what = f"{method} {path}"
        body = None if json_body is None else json.dumps(json_body).encode()
        try:
            try:
                async with asyncio.timeout(self.deadline):
                    answer = await self._api.request(
                        method,
                        url,
                        body=body,
                        content_type="application/json" if body is not None else "",
                        max_bytes=self.max_answer_bytes,
                        idempotent=idempotent,
                    )
            except BaseException:
                self.counters.api_request(method, path, "error")  # for /metrics
                raise
            self.counters.api_request(method, path, answer.status)
        except TimeoutError:
            text = f"{what}: no complete answer from Cleanvoice within {self.deadline:g} s"
            raise (TransientApiError(text) if idempotent else AmbiguousApiError(text)) from None
        except AnswerOverCap:
            raise self._too_large(what, idempotent) from None
        except CallFailed as failed:
            if not failed.sent:  # nothing was sent: safe to retry, even a create-edit
                raise TransientApiError(
                    f"{what}: cannot reach Cleanvoice ({self._describe(failed.error)})"
                ) from None
            text = f"{what}: no answer from Cleanvoice ({self._describe(failed.error)})"
            raise (TransientApiError(text) if idempotent else AmbiguousApiError(text)) from None
        self.log.debug(ev.API_CALL, method=method, url=redact_url(url), status=answer.status)
        if answer.status == 429:
            self.limiter.refused(budget, parse_retry_after(answer.header("Retry-After")))
        return await self._check(answer, what, idempotent)

    def _too_large(self, what: str, idempotent: bool) -> ApiError:
        text = (
            f"{what}: Cleanvoice's answer is larger than {self.max_answer_bytes // 2**20} MiB, "
            "the most cvsyncd reads (raise [cleanvoice] max_answer_mb if a result can "
            "really be that large)"
        )
        return AnswerTooLarge(text) if idempotent else AmbiguousApiError(text)

    async def _check(self, answer: Answer, what: str, idempotent: bool) -> Any:
        status, raw = answer.status, answer.body
        body: Any
        try:
            # a long transcript is megabytes of JSON: parsed off the event loop
            body = await asyncio.to_thread(json.loads, raw) if len(raw) > 65536 else json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            body = raw[:4096].decode("utf-8", "replace")
        if 200 <= status < 300:
            if isinstance(body, str):
                text = f"{what}: the answer was not valid JSON"
                raise TransientApiError(text) if idempotent else AmbiguousApiError(text)
            return body
        if 300 <= status < 400:
            # a redirect is never followed (it would carry the key away); for a create-edit
            # it cannot be known whether something behind it did the work
            text = f"{what}: Cleanvoice answered with a redirect (HTTP {status}), not followed"
            redirect = TransientApiError if idempotent else AmbiguousApiError
            raise redirect(text, status=status)
        message, code = error_message(body, status)
        kind: type[ApiError]
        if status == 429:
            kind = TransientApiError  # refused before doing anything: safe even for a create
        elif status in (401, 403) or (
            status < 500 and says_insufficient_credits(status, code, message)
        ):
            kind = AccountApiError  # the key or the credit: pause, never fail a job
        elif status == 408 or status >= 500:
            kind = TransientApiError if idempotent else AmbiguousApiError
        else:
            kind = PermanentApiError
        raise kind(
            self._scrub(f"{what}: HTTP {status}: {message}"),
            status=status,
            code=code,
            retry_after=parse_retry_after(answer.header("Retry-After")),
            said=self._scrub(message),
        )

    # -- file transfers (no credentials) -----------------------------------------------

    async def upload_file(
        self,
        signed_url: str,
        source: Path | IO[bytes],
        size: int,
        *,
        on_progress: ProgressCallback | None = None,
        sha256: bool = False,
    ) -> str | None:
        """PUT ``size`` bytes of ``source`` to a signed URL (see ``Transfers.upload_file``)."""
        return await self.transfers.upload_file(
            signed_url, source, size, on_progress=on_progress, sha256=sha256
        )

    async def download(self, url: str, sink: IO[bytes], *, offset: int = 0) -> int:
        """Stream a signed URL into ``sink`` (see ``Transfers.download``)."""
        return await self.transfers.download(url, sink, offset=offset)

    @property
    def max_download_bytes(self) -> int:
        return self.transfers.max_download_bytes

    def _describe(self, exc: BaseException) -> str:
        return self._scrub(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)

    def _scrub(self, text: str) -> str:
        return scrub(text, [self._key])
