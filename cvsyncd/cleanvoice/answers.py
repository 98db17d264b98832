"""What Cleanvoice's answers mean, whatever shape they come in.

The docs, the two official SDKs and the live service disagree about the shape of almost
every answer (``docs/cleanvoice-api.md`` lists the variants). Everything that reads the
*content* of an answer lives here, as pure functions over decoded JSON (or text), so that
the client, the pipeline and the commands read them alike:

- :func:`error_message`: the words and the code of an error body in any of its styles;
- :func:`says_insufficient_credits`: whether a refusal means the account ran out of credit;
- :func:`parse_edit_status`: a status poll, running, done or failed;
- :func:`failure_reason`: why an edit failed, as a sentence (never a Python repr);
- :func:`account_balance`: the credit balance of an account body, when it has one.

Text that came from the service is untrusted: it is stripped of control characters and
bounded (:func:`plain`) before anyone stores or shows it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_MESSAGE = 500  # characters of a service's message that are kept
RUNNING_STATUSES = frozenset(
    {
        "PENDING",
        "QUEUED",
        "STARTED",
        "RETRY",
        "PROCESSING",
        "PREPROCESSING",
        "CLASSIFICATION",
        "EDITING",
        "POSTPROCESSING",
        "EXPORT",
    }
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPACE = re.compile(r"\s+")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]{0,200}>")
_NO_CREDIT = re.compile(
    r"insufficient[ _-]?credit|not enough credit|no credits? left|out of credits?|"
    r"credits? (?:exhausted|depleted)|payment required",
    re.IGNORECASE,
)
# keys under which an account body has been seen to hold its balance, most specific first
_BALANCE_PATHS: tuple[tuple[str, ...], ...] = (
    ("credit", "total"),
    ("credits_remaining",),
    ("account", "credits_remaining"),
    ("account", "credit", "total"),
    ("account", "credits"),
    ("usage", "hours_remaining"),
    ("credits",),
    ("balance",),
)


def plain(text: object, limit: int = MAX_MESSAGE) -> str:
    """Return ``text`` as one tidy line: no control characters, runs of blanks collapsed,
    at most ``limit`` characters (an ellipsis marks a cut)."""
    value = _SPACE.sub(" ", _CONTROL.sub(" ", str(text))).strip()
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


def _words(value: Any) -> str | None:
    """A message held by ``value``: a string, or the text of a list of validation errors."""
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, list) and value:
        parts = [
            str(item.get("msg") or item.get("message") or "")
            if isinstance(item, Mapping)
            else str(item)
            for item in value[:5]
        ]
        joined = "; ".join(p for p in parts if p)
        return joined or None
    return None


def _text_body(body: str, status: int) -> str:
    """The words of a non-JSON body: plain text as it is, an HTML page by its title."""
    stripped = body.strip()
    if stripped.startswith("<"):
        title = _TITLE.search(stripped)
        words = html.unescape(_TAG.sub(" ", title.group(1))) if title else ""
        return f"HTTP {status} ({plain(words, 120)})" if words.strip() else f"HTTP {status}"
    return plain(stripped) if stripped else f"HTTP {status}"


def error_message(body: Any, status: int) -> tuple[str, str | None]:
    """Return (message, code) from an error body of any shape the service uses.

    ``{"error": {"code", "message"}}``, ``{"error": "text"}``, ``{"detail": "text"}``,
    ``{"detail": {"error": {…}}}``, ``{"detail": [{"msg": …}]}``, a flat
    ``{"message", "code"}``, plain text or an HTML error page. The message is plain text
    of bounded length; without one it is ``HTTP <status>``.
    """
    if isinstance(body, str):
        return _text_body(body, status), None
    if not isinstance(body, Mapping):
        return f"HTTP {status}", None
    layers: list[Mapping[str, Any]] = [body]
    for key in ("error", "detail"):
        inner = body.get(key)
        if isinstance(inner, Mapping):
            layers.insert(0, inner)
            if isinstance(inner.get("error"), Mapping):
                layers.insert(0, inner["error"])
    message = code = None
    for layer in layers:
        message = message or _words(layer.get("message"))
        code = code or layer.get("code") or layer.get("error_code")
    message = message or _words(body.get("detail")) or _words(body.get("error"))
    text = plain(message) if message else f"HTTP {status}"
    return text, (plain(code, 80) if isinstance(code, str | int) and str(code) else None)


def says_insufficient_credits(status: int | None, code: str | None, message: str) -> bool:
    """Whether a refusal means the account has run out of credit.

    HTTP 402 always does (the official SDK's own tests treat 402 so); any other status
    does when the code or the words say so (``INSUFFICIENT_CREDITS``).
    """
    if status == 402:
        return True
    return bool(_NO_CREDIT.search(f"{code or ''} {message}".replace("_", " ")))


@dataclass(frozen=True)
class EditStatus:
    """What ``GET /v2/edits/{id}`` said about an edit."""

    status: str
    result: Mapping[str, Any] | None = None  # the full result, only once it has arrived
    progress: Mapping[str, Any] | None = None  # running progress, when the API gave some
    message: str | None = None  # why it failed, for FAILURE

    @property
    def succeeded(self) -> bool:
        """SUCCESS with a result; SUCCESS without one is still to be polled."""
        return self.status == "SUCCESS" and self.result is not None

    @property
    def failed(self) -> bool:
        return self.status == "FAILURE"

    @property
    def known(self) -> bool:
        """Whether the status is one the docs or the SDKs name."""
        return self.status in RUNNING_STATUSES or self.status in ("SUCCESS", "FAILURE")

    @property
    def percent(self) -> float | None:
        if not self.progress:
            return None
        try:
            done, total = float(self.progress["done"]), float(self.progress["total"])
        except (KeyError, TypeError, ValueError):
            return None
        if not (0 <= done <= total) or total <= 0:
            return None
        return round(100.0 * done / total, 1)


def parse_edit_status(body: Mapping[str, Any]) -> EditStatus:
    """Interpret a ``GET /v2/edits/{id}`` answer, whatever its stage.

    ``result`` may be missing, null, ``{}``, a progress object, the full result, or for a
    failure a reason in any error style. SUCCESS counts only with a result that holds a
    ``download_url``; before that it is polled again.
    """
    status = plain(body["status"], 40).upper()
    result = body.get("result")
    if status == "SUCCESS":
        full = isinstance(result, Mapping) and isinstance(result.get("download_url"), str)
        return EditStatus(status, result=result if full else None)
    if status == "FAILURE":
        return EditStatus(status, message=failure_reason(body))
    progress = result if isinstance(result, Mapping) and result else None
    return EditStatus(status, progress=progress)


def failure_reason(body: Mapping[str, Any]) -> str | None:
    """Why a FAILURE poll says the edit failed, in plain words (None if it gives no reason).

    The reason may sit in ``result`` (a string, ``{"message"}``, ``{"error": {…}}``,
    ``{"detail": …}``) or beside it at the top of the body.
    """
    result = body.get("result")
    if isinstance(result, str) and result.strip():
        return plain(result)
    for source in (result, {k: v for k, v in body.items() if k != "status"}):
        if not isinstance(source, Mapping) or not source:
            continue
        message, code = error_message(source, 0)
        if message != "HTTP 0":
            return f"{message} ({code})" if code and code not in message else message
        for key in ("reason", "state", "job_name"):
            value = source.get(key)
            if isinstance(value, str) and value.strip().upper() not in ("", "FAILURE"):
                return plain(value)
    return None


def _lookup(body: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = body
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def account_balance(body: Mapping[str, Any]) -> float | None:
    """The credit balance of a ``GET /v1/account`` body, or None if it names none.

    The docs' body has ``credit.total``; the Python SDK's ``AccountInfo`` has
    ``credits_remaining``; other shapes are looked for too. A boolean or a non-finite
    number is not a balance.
    """
    found = _balance(body)
    return found[0] if found else None


def balance_unit(body: Mapping[str, Any]) -> str:
    """In what unit an account body gives its balance, as words for a person.

    ``meta.credit_unit`` when the body says; hours for the docs' ``usage.hours_remaining``;
    otherwise Cleanvoice's own credits (its dashboard tells what one buys).
    """
    meta = body.get("meta")
    unit = meta.get("credit_unit") if isinstance(meta, Mapping) else None
    if isinstance(unit, str) and unit.strip():
        return plain(unit, 40)
    found = _balance(body)
    if found and found[1] == ("usage", "hours_remaining"):
        return "hours"
    return "credits"


def _balance(body: Mapping[str, Any]) -> tuple[float, tuple[str, ...]] | None:
    for path in _BALANCE_PATHS:
        value = _lookup(body, path)
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float) and value == value and abs(value) != float("inf"):
            return float(value), path
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                continue
            if number == number and abs(number) != float("inf"):
                return number, path
    return None
