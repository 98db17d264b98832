"""Logging straight to journald, with every event's keys as fields of their own.

Under systemd, standard error already reaches the journal, but as one line of text. Sent
natively, each event keeps its facts as fields, so ``journalctl -u cvsyncd JOB=12`` finds
a job's whole story and ``-o json-pretty`` shows ``JOB``, ``PATH``, ``EDIT_ID``, ``STATE``
and ``FOLDER``; any other key becomes ``CVSYNCD_<KEY>``, the event's stable name
``CVSYNCD_EVENT`` (``journalctl -u cvsyncd CVSYNCD_EVENT=job.failed``). ``MESSAGE`` holds
its words. ``PRIORITY`` comes from the level, so ``journalctl -p warning`` works.

:class:`JournalRenderer` is the last processor of a structlog chain: it sends the event
and drops it (the logger prints nothing), or, if the journal cannot be reached, hands the
event to its fallback renderer so the line goes to standard error instead of being lost.
:class:`JournalHandler` does the same for the stdlib loggers (httpx, watchdog).

The caller scrubs secrets *before* this module sees an event (``logs.scrub_secrets`` runs
earlier in the chain); nothing here adds data of its own beyond the level.

With ``systemd-python`` installed, ``systemd.journal.sendv`` sends; otherwise the native
protocol (systemd.journal-fields(7), "Journal Native Protocol") over the journal's
datagram socket: ``NAME=value\\n`` per field, or for a value holding a newline
``NAME\\n``, its length as 64-bit little-endian, the value, ``\\n``. A datagram too big for
the socket goes in a sealed memfd passed along with an empty datagram, as libsystemd does.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import socket
import stat
import struct
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TextIO

import structlog

JOURNAL_SOCKET = "/run/systemd/journal/socket"
IDENTIFIER = "cvsyncd"

# event keys that are fields of their own, under these names
WELL_KNOWN = {
    "job": "JOB",
    "path": "PATH",
    "edit_id": "EDIT_ID",
    "state": "STATE",
    "folder": "FOLDER",
}
# syslog priorities (journald's PRIORITY) of structlog's level names
PRIORITIES = {
    "critical": 2,
    "exception": 3,
    "error": 3,
    "warning": 4,
    "warn": 4,
    "notice": 5,
    "info": 6,
    "debug": 7,
}
# keys that are not context: the text itself, the level (PRIORITY), the time (journald
# keeps its own), and a traceback (appended to MESSAGE, as journalctl shows MESSAGE only)
NOT_CONTEXT = frozenset({"event", "level", "timestamp", "exception"})
PREFIX = "CVSYNCD_"
MAX_NAME = 64  # journald ignores longer field names
_INVALID_NAME_CHARS = re.compile(r"[^A-Z0-9_]")
_PLAIN = re.compile(r"[^\s\"'=\\]+")

_FORMATTER = logging.Formatter()

Fields = list[tuple[str, str]]
Sendv = Callable[..., Any]


def field_name(key: str) -> str:
    """Return the journal field name of the event key ``key``: a well-known name, or
    ``CVSYNCD_`` and the key upper-cased, with anything but A-Z, 0-9 and ``_`` made ``_``
    (journald's rules: those characters, no leading ``_`` or digit, at most 64)."""
    known = WELL_KNOWN.get(key)
    if known:
        return known
    return (PREFIX + _INVALID_NAME_CHARS.sub("_", key.upper()))[:MAX_NAME]


def field_value(value: Any) -> str:
    """Return ``value`` as journal text: strings as they are, the rest as JSON where it can."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float) or value is None:
        return json.dumps(value)
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def context_text(key: str, value: Any) -> str:
    """Return ``key=value`` for MESSAGE, the value quoted when it has spaces or quotes."""
    text = field_value(value)
    return f"{key}={text if _PLAIN.fullmatch(text) else json.dumps(text, ensure_ascii=False)}"


def journal_fields(
    event: Mapping[str, Any], method: str = "info", *, identifier: str = IDENTIFIER
) -> Fields:
    """Given a structlog event (already scrubbed) and the name of the logging method, return
    its journal fields, in order: ``MESSAGE``, ``PRIORITY``, ``SYSLOG_IDENTIFIER``, then one
    field per other key (``None`` values left out).

    ``MESSAGE`` is the event text followed by the context as ``key=value`` pairs (so that
    plain ``journalctl`` says which job and file a line is about) and any traceback.
    """
    level = str(event.get("level", method)).lower()
    context = [(key, value) for key, value in event.items() if key not in NOT_CONTEXT]
    context = [(key, value) for key, value in context if value is not None]
    words = event.get("message", event.get("event", ""))
    message = " ".join(
        [field_value(words), *(context_text(k, v) for k, v in context if k != "message")]
    ).strip()
    if event.get("exception"):
        message += "\n" + field_value(event["exception"])
    fields: Fields = [
        ("MESSAGE", message),
        ("PRIORITY", str(PRIORITIES.get(level, 6))),
        ("SYSLOG_IDENTIFIER", identifier),
    ]
    if "message" in event:  # the event's stable name (events.py), beside its words
        fields.append((field_name("event"), field_value(event.get("event", ""))))
    fields += [(field_name(key), field_value(value)) for key, value in context if key != "message"]
    return fields


def encode_value(value: str) -> bytes:
    # a path name may carry undecodable bytes as surrogates: give journald the real bytes
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace")


def encode_fields(fields: Iterable[tuple[str, str]]) -> bytes:
    """Return ``fields`` in the journal's native protocol."""
    out = bytearray()
    for name, text in fields:
        value = encode_value(text)
        if b"\n" in value:
            out += name.encode("ascii") + b"\n" + struct.pack("<Q", len(value)) + value + b"\n"
        else:
            out += name.encode("ascii") + b"=" + value + b"\n"
    return bytes(out)


def libsystemd_sendv() -> Sendv | None:
    """Return ``systemd.journal.sendv`` if systemd-python is importable."""
    try:
        from systemd import journal  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    sendv: Sendv = journal.sendv
    return sendv


class JournalWriter:
    """Sends field lists to journald. :meth:`send` returns whether the entry was sent and
    never raises."""

    def __init__(self, socket_path: str | os.PathLike[str] = JOURNAL_SOCKET):
        self.socket_path = os.fspath(socket_path)
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        # libsystemd knows only the standard socket; tests and odd setups give another
        self._sendv = libsystemd_sendv() if self.socket_path == JOURNAL_SOCKET else None

    def send(self, fields: Iterable[tuple[str, str]]) -> bool:
        try:
            if self._sendv is not None:
                self._sendv(*(name.encode("ascii") + b"=" + encode_value(v) for name, v in fields))
            else:
                self._send_native(encode_fields(fields))
        except (OSError, ValueError):
            return False
        return True

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None

    def _send_native(self, payload: bytes) -> None:
        with self._lock:
            if self._socket is None:
                self._socket = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                )
            try:
                self._socket.sendto(payload, self.socket_path)
            except OSError as error:
                if error.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                    raise
                self._send_in_memfd(self._socket, payload)

    def _send_in_memfd(self, sock: socket.socket, payload: bytes) -> None:
        """Send an entry too big for one datagram as journald accepts it: in a sealed memfd
        passed with an empty datagram."""
        fd = os.memfd_create("journal-entry", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            with os.fdopen(os.dup(fd), "wb") as stream:
                stream.write(payload)
            seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))]
            sock.sendmsg([b""], rights, 0, self.socket_path)  # (socket.send_fds drops the address)
        finally:
            os.close(fd)


class JournalRenderer:
    """structlog processor, last in the chain: send the event to the journal and drop it.

    If the journal cannot take it, return ``fallback(logger, method, event)`` instead (by
    default a JSON line), so the configured logger still writes it to standard error.
    """

    def __init__(
        self,
        writer: JournalWriter | None = None,
        *,
        identifier: str = IDENTIFIER,
        fallback: Callable[[Any, str, Any], Any] | None = None,
    ):
        self.writer = writer or JournalWriter()
        self.identifier = identifier
        self.fallback = fallback or structlog.processors.JSONRenderer()

    def __call__(self, logger: Any, method: str, event: Any) -> Any:
        if self.writer.send(journal_fields(event, method, identifier=self.identifier)):
            raise structlog.DropEvent
        return self.fallback(logger, method, event)


class JournalHandler(logging.Handler):
    """A stdlib logging handler sending records to the journal (``CVSYNCD_LOGGER`` names
    the logger); what it cannot send goes to ``fallback`` (standard error).

    Records are scrubbed with ``scrub`` first, when given, since they do not pass through
    the structlog chain.
    """

    def __init__(
        self,
        writer: JournalWriter | None = None,
        *,
        identifier: str = IDENTIFIER,
        scrub: Callable[[str], str] | None = None,
        fallback: TextIO | None = None,
    ):
        super().__init__()
        self.writer = writer or JournalWriter()
        self.identifier = identifier
        self.scrub = scrub or (lambda text: text)
        self.fallback = fallback

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.scrub(record.getMessage())
            event: dict[str, Any] = {"event": text, "logger": record.name}
            if record.exc_info:
                event["exception"] = self.scrub(_FORMATTER.formatException(record.exc_info))
            fields = journal_fields(event, record.levelname, identifier=self.identifier)
            if not self.writer.send(fields):
                stream = self.fallback or sys.stderr
                stream.write(f"{record.levelname} {record.name}: {text}\n")
        except Exception:
            self.handleError(record)


def journal_available(
    env: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
    socket_path: str | os.PathLike[str] = JOURNAL_SOCKET,
) -> bool:
    """Return whether to log to the journal natively.

    True when ``$JOURNAL_STREAM`` names the device and inode of ``stream`` (standard error
    by default), which is how systemd says that stream goes to the journal; or when
    ``$INVOCATION_ID`` says we run under systemd and the journal socket exists.
    """
    env = os.environ if env is None else env
    stream = sys.stderr if stream is None else stream
    expected = env.get("JOURNAL_STREAM", "")
    if expected:
        try:
            st = os.fstat(stream.fileno())
        except (OSError, ValueError, AttributeError):
            pass  # no real file behind the stream (a test's capture, a closed stream)
        else:
            if expected == f"{st.st_dev}:{st.st_ino}":
                return True
    if env.get("INVOCATION_ID"):
        try:
            return stat.S_ISSOCK(os.stat(socket_path).st_mode)
        except OSError:
            return False
    return False
