"""Logging to journald: a real datagram socket stands in for the journal's, and the
datagrams are parsed as journald parses them."""

from __future__ import annotations

import fcntl
import io
import logging
import os
import socket
import struct
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from cvsyncd import events as ev
from cvsyncd.daemon.journal import (
    JOURNAL_SOCKET,
    JournalHandler,
    JournalRenderer,
    JournalWriter,
    field_name,
    journal_available,
    journal_fields,
)
from cvsyncd.daemon.logs import add_message, scrub_secrets
from cvsyncd.redact import register_secret, scrub

CANARY = "cv-canary-J0urnal-key-5eCr3T"


def parse_entry(data: bytes) -> list[tuple[str, bytes]]:
    """Parse one entry of the journal's native protocol into (name, value) pairs."""
    fields, at = [], 0
    while at < len(data):
        end = data.index(b"\n", at)
        line = data[at:end]
        if b"=" in line:
            name, _, value = line.partition(b"=")
            at = end + 1
        else:  # NAME\n, 64-bit little-endian length, value, \n
            name = line
            (size,) = struct.unpack("<Q", data[end + 1 : end + 9])
            value = data[end + 9 : end + 9 + size]
            assert data[end + 9 + size : end + 10 + size] == b"\n"
            at = end + 10 + size
        fields.append((name.decode("ascii"), value))
    return fields


class FakeJournal:
    """An AF_UNIX datagram socket where journald's would be."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(2)

    def raw(self) -> bytes:
        data, fds, _flags, _addr = socket.recv_fds(self.sock, 1 << 20, 1)
        if fds:  # a big entry comes in a sealed memfd
            assert data == b""
            seals = fcntl.fcntl(fds[0], fcntl.F_GET_SEALS)
            assert seals & fcntl.F_SEAL_WRITE and seals & fcntl.F_SEAL_SEAL
            with os.fdopen(fds[0], "rb") as stream:
                stream.seek(0)  # journald maps the whole file, whatever its offset
                return stream.read()
        return data

    def entry(self) -> dict[str, str]:
        return {name: value.decode("utf-8") for name, value in parse_entry(self.raw())}

    def nothing_waiting(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(1)
        except BlockingIOError:
            return True
        finally:
            self.sock.settimeout(2)
        return False


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[FakeJournal]:
    fake = FakeJournal(tmp_path / "journal.socket")
    yield fake
    fake.sock.close()


@pytest.fixture
def writer(journal: FakeJournal) -> Iterator[JournalWriter]:
    sender = JournalWriter(journal.path)
    yield sender
    sender.close()


def make_logger(writer: JournalWriter, out: io.StringIO | None = None) -> Any:
    """A structlog logger with the chain logs.configure uses, ending in the journal."""
    return structlog.wrap_logger(
        structlog.PrintLogger(out or io.StringIO()),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            add_message,
            scrub_secrets,
            JournalRenderer(writer),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    )


def test_an_event_becomes_structured_fields(journal: FakeJournal, writer: JournalWriter) -> None:
    out = io.StringIO()
    log = make_logger(writer, out)
    log.info(
        ev.JOB_DONE,
        job=12,
        path="show/ep 1.wav",
        edit_id="e-123",
        state="done",
        folder="podcast",
        seconds=1.5,
        outputs=["ep 1.wav", "ep 1.cleanvoice.json"],
        nothing=None,
    )
    entry = journal.entry()
    assert entry == {
        "MESSAGE": 'done job=12 path="show/ep 1.wav" edit_id=e-123 state=done folder=podcast '
        'seconds=1.5 outputs="[\\"ep 1.wav\\", \\"ep 1.cleanvoice.json\\"]"',
        "PRIORITY": "6",
        "SYSLOG_IDENTIFIER": "cvsyncd",
        "CVSYNCD_EVENT": "job.done",  # the stable name; MESSAGE holds its words
        "JOB": "12",
        "PATH": "show/ep 1.wav",
        "EDIT_ID": "e-123",
        "STATE": "done",
        "FOLDER": "podcast",
        "CVSYNCD_SECONDS": "1.5",
        "CVSYNCD_OUTPUTS": '["ep 1.wav", "ep 1.cleanvoice.json"]',
    }
    assert out.getvalue() == ""  # sent to the journal, so not printed as well


@pytest.mark.parametrize(
    ("method", "priority"), [("debug", "7"), ("info", "6"), ("warning", "4"), ("error", "3")]
)
def test_priority_follows_the_level(
    journal: FakeJournal, writer: JournalWriter, method: str, priority: str
) -> None:
    getattr(make_logger(writer), method)("something", job=1)
    assert journal.entry()["PRIORITY"] == priority


def test_a_traceback_is_a_multi_line_message(journal: FakeJournal, writer: JournalWriter) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        make_logger(writer).exception("step crashed", job=3)
    raw = journal.raw()
    assert raw.startswith(b"MESSAGE\n")  # the binary form, for a value with newlines
    entry = {name: value.decode() for name, value in parse_entry(raw)}
    assert entry["PRIORITY"] == "3"
    first, *rest = entry["MESSAGE"].split("\n")
    assert first == "step crashed job=3"
    assert rest[0] == "Traceback (most recent call last):" and "RuntimeError: boom" in rest
    assert "CVSYNCD_EXCEPTION" not in entry


def test_values_with_newlines_and_odd_bytes_arrive_whole(
    journal: FakeJournal, writer: JournalWriter
) -> None:
    path = "show/line one\nline two.wav"
    undecodable = os.fsdecode(b"caf\xe9.wav")  # a Latin-1 name on a UTF-8 system
    make_logger(writer).info("taken", path=path, original=undecodable)
    fields = dict(parse_entry(journal.raw()))
    assert fields["PATH"] == path.encode()
    assert fields["CVSYNCD_ORIGINAL"] == b"caf\xe9.wav"


def test_keys_are_made_valid_field_names() -> None:
    assert field_name("job") == "JOB"
    assert field_name("bytes_written") == "CVSYNCD_BYTES_WRITTEN"
    assert field_name("retry-after.s") == "CVSYNCD_RETRY_AFTER_S"
    assert field_name("_private") == "CVSYNCD__PRIVATE"
    assert field_name("1st") == "CVSYNCD_1ST"
    assert field_name("grüße") == "CVSYNCD_GR_SSE"  # ß upper-cases to SS
    long_name = field_name("x" * 100)
    assert len(long_name) == 64 and long_name.startswith("CVSYNCD_X")


def test_secrets_scrubbed_by_the_caller_never_reach_the_journal(
    journal: FakeJournal, writer: JournalWriter
) -> None:
    register_secret(CANARY)
    signed = "https://bucket.example.com/up/ep1.wav?X-Amz-Signature=c4n4ry515n"
    log = make_logger(writer)
    log.info(f"uploading with {CANARY}", url=signed, headers=[f"Bearer {CANARY}"])
    try:
        raise ValueError(f"refused {CANARY} at {signed}")
    except ValueError:
        log.exception("failed")
    first, second = journal.raw(), journal.raw()
    for raw in (first, second):
        assert CANARY.encode() not in raw and b"c4n4ry515n" not in raw
    assert dict(parse_entry(first))["CVSYNCD_URL"] == (
        b"https://bucket.example.com/up/ep1.wav?REDACTED"
    )


def test_an_entry_too_big_for_a_datagram_goes_in_a_memfd(
    journal: FakeJournal, writer: JournalWriter
) -> None:
    # above the default socket send buffer (net.core.wmem_default, 208 KiB)
    big = "".join(f"line {n} of a long detail\n" for n in range(20_000))
    make_logger(writer).warning("big", detail=big)
    entry = journal.entry()
    assert entry["CVSYNCD_DETAIL"] == big and entry["PRIORITY"] == "4"


def test_without_a_journal_the_line_goes_to_the_fallback(tmp_path: Path) -> None:
    out = io.StringIO()
    sender = JournalWriter(tmp_path / "no-journal.socket")
    try:
        make_logger(sender, out).warning("still logged", job=5)
    finally:
        sender.close()
    line = out.getvalue()
    assert '"event": "still logged"' in line and '"job": 5' in line


def test_stdlib_records_go_to_the_journal_scrubbed(
    journal: FakeJournal, writer: JournalWriter
) -> None:
    register_secret(CANARY)
    logger = logging.getLogger("cvsyncd-test.journal")
    handler = JournalHandler(writer, scrub=scrub)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("HTTP Request: GET %s", f"https://api.example/v2?key={CANARY}")
    finally:
        logger.removeHandler(handler)
    entry = journal.entry()
    assert entry["PRIORITY"] == "4"
    assert entry["CVSYNCD_LOGGER"] == "cvsyncd-test.journal"
    assert CANARY not in entry["MESSAGE"] and "REDACTED" in entry["MESSAGE"]


def test_stdlib_tracebacks_go_into_the_message(journal: FakeJournal, writer: JournalWriter) -> None:
    logger = logging.getLogger("cvsyncd-test.journal-tb")
    handler = JournalHandler(writer)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise OSError("disk gone")
        except OSError:
            logger.exception("observer died")
    finally:
        logger.removeHandler(handler)
    entry = journal.entry()
    assert entry["PRIORITY"] == "3"
    assert entry["MESSAGE"].startswith("observer died logger=cvsyncd-test.journal-tb\nTraceback")
    assert entry["MESSAGE"].endswith("OSError: disk gone")


def test_journal_fields_is_pure() -> None:
    event = {"event": "daemon.started", "message": "started", "level": "info", "folders": 2}
    fields = journal_fields(event, "info")
    assert fields == [
        ("MESSAGE", "started folders=2"),
        ("PRIORITY", "6"),
        ("SYSLOG_IDENTIFIER", "cvsyncd"),
        ("CVSYNCD_EVENT", "daemon.started"),
        ("CVSYNCD_FOLDERS", "2"),
    ]
    # an event without words of its own (a name not in events.py): the name is the text
    assert journal_fields({"event": "observer died", "level": "error"})[0] == (
        "MESSAGE",
        "observer died",
    )


def test_a_stand_in_systemd_journal_module_is_used_when_importable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # systemd-python is not installed here; this stand-in records what sendv was given
    calls: list[tuple[bytes, ...]] = []
    package = types.ModuleType("systemd")
    module = types.ModuleType("systemd.journal")
    module.sendv = lambda *args: calls.append(args)  # type: ignore[attr-defined]
    package.journal = module  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "systemd", package)
    monkeypatch.setitem(sys.modules, "systemd.journal", module)
    sender = JournalWriter()
    assert sender.socket_path == JOURNAL_SOCKET
    assert sender.send([("MESSAGE", "two\nlines"), ("JOB", "7")])
    assert calls == [(b"MESSAGE=two\nlines", b"JOB=7")]


# -- whether to use the journal -------------------------------------------------------------


def test_journal_stream_matching_stderr_means_the_journal(tmp_path: Path) -> None:
    with open(tmp_path / "stderr", "w") as stream:
        st = os.fstat(stream.fileno())
        assert journal_available({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, stream)
        other = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}
        assert not journal_available(other, stream, tmp_path / "none")
    assert not journal_available({"JOURNAL_STREAM": "1:2"}, io.StringIO(), tmp_path / "none")


def test_invocation_id_and_the_socket_mean_the_journal(
    tmp_path: Path, journal: FakeJournal
) -> None:
    env = {"INVOCATION_ID": "0123456789abcdef"}
    assert journal_available(env, io.StringIO(), journal.path)
    assert not journal_available(env, io.StringIO(), tmp_path / "none")
    (tmp_path / "plain").write_text("")
    assert not journal_available(env, io.StringIO(), tmp_path / "plain")  # not a socket
    assert not journal_available({}, io.StringIO(), journal.path)
