"""Logging: the journal under systemd, readable lines on a terminal, JSON lines otherwise,
secrets never.

Every event passes through ``scrub_secrets`` before it is rendered, so neither the API
key nor the query string of a signed URL can reach a log line, whatever a caller passed.
Third-party loggers that print request URLs (httpx, httpcore) are kept at WARNING.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from cvsyncd.daemon.journal import JournalHandler, JournalRenderer, journal_available
from cvsyncd.events import message_of
from cvsyncd.redact import scrub

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
QUIET_LOGGERS = ("httpx", "httpcore", "watchdog", "asyncio")


def scrub_secrets(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
    """structlog processor: remove secrets from every string in the event."""
    for key, value in list(event.items()):
        if isinstance(value, str):
            event[key] = scrub(value)
        elif isinstance(value, list | tuple):
            event[key] = [scrub(v) if isinstance(v, str) else v for v in value]
    return event


def add_message(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
    """structlog processor: the plain words for the event's name (``events.py``), in
    ``message``, unless the caller gave its own."""
    name = event.get("event")
    if "message" not in event and isinstance(name, str):
        words = message_of(name)
        if words is not None:
            event["message"] = words
    return event


def words_first(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
    """structlog processor for a terminal: the words lead, the event's name follows them."""
    words = event.pop("message", None)
    if words is not None:
        event["event"] = f"{words} [{event.get('event')}]"
    return event


class _ScrubFilter(logging.Filter):
    """Scrub stdlib records (third-party libraries) the way structlog events are."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        return True


def configure(
    level: str = "info",
    stream: TextIO | None = None,
    *,
    json: bool | None = None,
    journal: bool | None = None,
) -> None:
    """Set up structlog (and the stdlib root logger) for the whole process.

    Under systemd (``journal`` None: detected from ``$JOURNAL_STREAM``) events go to the
    journal with structured fields (JOB, PATH, EDIT_ID, …); otherwise JSON lines, or
    readable lines on a terminal.
    """
    stream = stream or sys.stderr
    if journal is None:
        journal = journal_available(stream=stream)
    if json is None:
        json = not stream.isatty()
    numeric = LEVELS.get(level, logging.INFO)
    rendering: list[Any]
    if journal:
        rendering = [JournalRenderer()]
    elif json:
        rendering = [structlog.processors.JSONRenderer()]
    else:
        rendering = [words_first, structlog.dev.ConsoleRenderer(colors=stream.isatty())]
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,  # tracebacks as text, so they are scrubbed too
        add_message,
        scrub_secrets,
        *rendering,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    handler: logging.Handler
    if journal:
        handler = JournalHandler(scrub=scrub, fallback=stream)
    else:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler.addFilter(_ScrubFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))


def set_level(level: str) -> None:
    """Change the level of a configured logger (on a config reload)."""
    numeric = LEVELS.get(level, logging.INFO)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(numeric))
    logging.getLogger().setLevel(numeric)
