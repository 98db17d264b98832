"""Hooks and webhooks: real processes, and a real HTTP receiver on 127.0.0.1 that checks
signatures the way a user's receiver would (with :func:`verify_signature`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from cvsyncd.errors import ConfigError
from cvsyncd.notify.hooks import LOGGED_OUTPUT, run_command
from cvsyncd.notify.message import Event, Report
from cvsyncd.notify.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    read_secret,
    send_webhook,
    sign,
    verify_signature,
)
from tests.conftest import REPO

SECRET = b"whsec-0123456789abcdef"
EVENT = Event(
    kind="job.done",
    job_id=42,
    state="done",
    folder="/srv/podcast/inbox",
    input="shows/Folge 12, Über Nacht.wav",
    outputs=("/srv/podcast/outbox/shows/Folge 12.mp3", "/srv/podcast/outbox/shows/Folge 12.srt"),
    error=None,
    at=1732611200.5,
)


# -- a webhook receiver -------------------------------------------------------------------


class Receiver:
    """An HTTP server on 127.0.0.1 that records requests and answers from a script.

    With a secret it behaves like a careful receiver: a request whose signature or
    timestamp does not verify gets 401 and counts as refused.
    """

    def __init__(self, secret: bytes | None = SECRET):
        self.secret = secret
        self.requests: list[dict[str, Any]] = []
        self.answers: list[tuple[int, dict[str, str], float]] = []  # status, headers, delay
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                verified = None
                if receiver.secret is not None:
                    verified = verify_signature(
                        receiver.secret,
                        self.headers.get(TIMESTAMP_HEADER, ""),
                        body,
                        self.headers.get(SIGNATURE_HEADER, ""),
                    )
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                    | {"verified": verified}
                )
                status, headers, delay = 204, dict[str, str](), 0.0
                if verified is False:
                    status = 401
                elif receiver.answers:
                    status, headers, delay = receiver.answers.pop(0)
                time.sleep(delay)
                with contextlib.suppress(OSError):  # the client may have given up
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/cvsyncd"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


def webhook(url: str, **options: Any) -> Report:
    options.setdefault("secret", SECRET)
    options.setdefault("timeout", 5.0)
    options.setdefault("backoff", 0.02)
    return asyncio.run(send_webhook(url, EVENT, **options))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- webhooks -------------------------------------------------------------------------------


def test_webhook_is_signed_and_verifies(receiver: Receiver) -> None:
    delivery = webhook(receiver.url)
    assert delivery == Report("webhook", True, 1, f"HTTP 204 from {receiver.url}")
    [request] = receiver.requests
    assert request["verified"] is True
    headers = request["headers"]
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Cvsyncd-Event"] == "job.done"
    assert abs(int(headers["X-Cvsyncd-Timestamp"]) - time.time()) < 5
    assert headers["X-Cvsyncd-Signature"].startswith("sha256=")
    assert request["body"] == EVENT.to_json()
    document = json.loads(request["body"])
    assert document["kind"] == "job.done"
    assert document["outputs"] == list(EVENT.outputs)
    assert document["input"] == "shows/Folge 12, Über Nacht.wav"


def test_receiver_refuses_a_tampered_body_a_stale_timestamp_and_a_wrong_secret(
    receiver: Receiver,
) -> None:
    assert webhook(receiver.url).ok
    genuine = receiver.requests[0]
    timestamp = genuine["headers"][TIMESTAMP_HEADER]
    signature = genuine["headers"][SIGNATURE_HEADER]
    stale = str(int(time.time()) - 3600)
    attempts = {
        "replayed as is": (genuine["body"], timestamp, signature),
        "tampered body": (genuine["body"].replace(b'"done"', b'"failed"'), timestamp, signature),
        "stale timestamp": (genuine["body"], stale, sign(SECRET, stale, genuine["body"])),
        "wrong secret": (genuine["body"], timestamp, sign(b"guess", timestamp, genuine["body"])),
        "no signature": (genuine["body"], timestamp, ""),
    }
    statuses = {}
    for name, (body, stamp, sig) in attempts.items():
        headers = {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sig}
        statuses[name] = httpx.post(receiver.url, content=body, headers=headers).status_code
    assert statuses == {
        "replayed as is": 204,  # within the tolerance a replay verifies; receivers dedupe
        "tampered body": 401,
        "stale timestamp": 401,
        "wrong secret": 401,
        "no signature": 401,
    }


def documented_verifier() -> Any:
    """The Python example of docs/outputs.md ("Verifying a webhook signature"), run as is."""
    text = (REPO / "docs" / "outputs.md").read_text()
    section = text.split("### Verifying a webhook signature", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/outputs.md", "exec"), namespace)
    return namespace["verify_cvsyncd_signature"]


def test_the_documented_verification_example_works(receiver: Receiver) -> None:
    verify = documented_verifier()
    assert webhook(receiver.url).ok
    request = receiver.requests[0]
    assert verify(SECRET, request["headers"], request["body"])
    assert not verify(SECRET, request["headers"], request["body"] + b" ")
    assert not verify(b"other", request["headers"], request["body"])
    stale = dict(request["headers"], **{TIMESTAMP_HEADER: str(int(time.time()) - 3600)})
    assert not verify(SECRET, stale, request["body"])


def test_verify_signature() -> None:
    body = EVENT.to_json()
    signature = sign(SECRET, "1000", body)
    assert verify_signature(SECRET, "1000", body, signature, now=1000)
    assert verify_signature(SECRET, "1000", body, signature, now=1299)
    assert not verify_signature(SECRET, "1000", body, signature, now=1301)
    assert not verify_signature(SECRET, "1000", body, signature, now=699)
    assert verify_signature(SECRET, "1000", body, signature, now=1500, tolerance=600)
    assert not verify_signature(SECRET, "1001", body, signature, now=1000)  # timestamp signed
    assert not verify_signature(SECRET, "1000", body + b" ", signature, now=1000)
    assert not verify_signature(SECRET, "1e3", body, signature, now=1000)
    assert not verify_signature(SECRET, "-1000", body, signature, now=1000)
    assert not verify_signature(SECRET, "1000", body, "sha256=ü", now=1000)
    assert not verify_signature(SECRET, "1000", body, signature.upper(), now=1000)


def test_retries_on_503_then_succeeds(receiver: Receiver) -> None:
    receiver.answers = [(503, {}, 0.0), (503, {"Retry-After": "0"}, 0.0), (200, {}, 0.0)]
    delivery = webhook(receiver.url)
    assert delivery.ok and delivery.attempts == 3
    assert len(receiver.requests) == 3 and all(r["verified"] for r in receiver.requests)
    ids = {r["headers"]["X-Cvsyncd-Delivery"] for r in receiver.requests}
    assert len(ids) == 1  # one delivery, three attempts


def test_no_retry_on_400(receiver: Receiver) -> None:
    receiver.answers = [(400, {}, 0.0)]
    delivery = webhook(receiver.url)
    assert delivery == Report("webhook", False, 1, f"HTTP 400 from {receiver.url}")
    assert len(receiver.requests) == 1


def test_gives_up_after_the_last_attempt(receiver: Receiver) -> None:
    receiver.answers = [(500, {}, 0.0)] * 5
    delivery = webhook(receiver.url, attempts=3)
    assert not delivery.ok and delivery.attempts == 3 and "HTTP 500" in delivery.detail
    assert len(receiver.requests) == 3


def test_honours_retry_after(receiver: Receiver) -> None:
    receiver.answers = [(429, {"Retry-After": "1"}, 0.0)]
    started = time.monotonic()
    assert webhook(receiver.url).ok
    assert time.monotonic() - started >= 1.0


def test_a_very_long_retry_after_ends_the_delivery(receiver: Receiver) -> None:
    receiver.answers = [(503, {"Retry-After": "86400"}, 0.0)]
    delivery = webhook(receiver.url)
    assert not delivery.ok and delivery.attempts == 1 and "gave up" in delivery.detail


def test_a_timeout_is_retried(receiver: Receiver) -> None:
    receiver.answers = [(200, {}, 1.5), (200, {}, 0.0)]
    delivery = webhook(receiver.url, timeout=0.4)
    assert delivery.ok and delivery.attempts == 2


def test_connection_refused_fails_without_raising() -> None:
    delivery = webhook(f"http://127.0.0.1:{free_port()}/hook", attempts=2)
    assert not delivery.ok and delivery.attempts == 2
    assert "ConnectError" in delivery.detail


def test_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.answers = [(307, {"Location": receiver.url + "/elsewhere"}, 0.0)]
    delivery = webhook(receiver.url)
    assert not delivery.ok and delivery.attempts == 1 and "307" in delivery.detail
    assert [r["path"] for r in receiver.requests] == ["/hooks/cvsyncd"]


@pytest.mark.parametrize(
    "url", ["http://example.com/hook", "ftp://127.0.0.1/x", "https://", "not a url", "http://[::1"]
)
def test_only_https_or_loopback(url: str) -> None:
    delivery = webhook(url)  # no network: refused before any request
    assert not delivery.ok and delivery.attempts == 0


def test_the_query_string_and_secret_never_show(receiver: Receiver) -> None:
    receiver.answers = [(500, {}, 0.0)] * 2
    url = receiver.url + "?token=sup3r-s3cret-t0ken"
    with capture_logs() as logs:
        delivery = webhook(url, attempts=2)
    assert not delivery.ok
    assert delivery.detail == f"HTTP 500 from {receiver.url}"
    assert receiver.requests[0]["path"] == "/hooks/cvsyncd?token=sup3r-s3cret-t0ken"
    text = json.dumps(logs, default=str)
    assert "sup3r-s3cret-t0ken" not in text and SECRET.decode() not in text
    assert {entry["event"] for entry in logs} == {"webhook.retry", "webhook.failed"}


def test_unsigned_without_a_secret() -> None:
    with Receiver(secret=None) as server:
        assert webhook(server.url, secret=None).ok
        assert SIGNATURE_HEADER not in server.requests[0]["headers"]


# -- hook commands --------------------------------------------------------------------------

HOOK = """
import json, os, sys
report = {
    "env": {k: v for k, v in os.environ.items()},
    "stdin": json.loads(sys.stdin.read()),
    "pgid_is_own": os.getpgid(0) == os.getpid(),
}
open(sys.argv[1], "w").write(json.dumps(report))
print("hook says hello")
"""


def hook(argv: list[str], timeout: float = 10.0, env: dict[str, str] | None = None) -> Report:
    return asyncio.run(run_command(argv, EVENT, timeout=timeout, env=env))


def test_hook_gets_the_event_in_its_environment_and_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    env = dict(os.environ) | {
        "NOTIFY_SOCKET": "/run/systemd/notify",
        "WATCHDOG_USEC": "30000000",
        "WATCHDOG_PID": "1",
        "LISTEN_FDS": "1",
        "LISTEN_PID": "1",
        "CLEANVOICE_API_KEY": "cv-secret-key",
        "KEEP_ME": "yes",
    }
    with capture_logs() as logs:
        delivery = hook([sys.executable, "-c", HOOK, str(out)], env=env)
    assert delivery == Report("command", True, 1, "exit 0")
    report = json.loads(out.read_text())
    seen = report["env"]
    assert seen["CVSYNCD_EVENT"] == "job.done"
    assert seen["CVSYNCD_JOB_ID"] == "42"
    assert seen["CVSYNCD_STATE"] == "done"
    assert seen["CVSYNCD_INPUT"] == EVENT.input
    assert seen["CVSYNCD_OUTPUTS"].split("\n") == list(EVENT.outputs)
    assert seen["CVSYNCD_ERROR"] == ""
    assert seen["KEEP_ME"] == "yes"
    for dropped in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID"):
        assert dropped not in seen
    assert "CLEANVOICE_API_KEY" not in seen
    assert report["stdin"] == json.loads(EVENT.to_json())
    assert report["pgid_is_own"]  # a process group of its own, so it can be killed whole
    assert [(e["event"], e["log_level"], e["stdout"]) for e in logs] == [
        ("hook.done", "info", "hook says hello")
    ]


def test_a_failing_hook_is_a_failed_delivery() -> None:
    with capture_logs() as logs:
        delivery = hook(["sh", "-c", "echo partial; echo 'went wrong' >&2; exit 3"])
    assert delivery == Report("command", False, 1, "exit 3")
    [entry] = logs
    assert (entry["log_level"], entry["stdout"], entry["stderr"]) == (
        "warning",
        "partial",
        "went wrong",
    )


def test_a_missing_hook_is_a_failed_delivery(tmp_path: Path) -> None:
    delivery = hook([str(tmp_path / "no-such-hook"), "--flag"])
    assert not delivery.ok and "cannot run" in delivery.detail
    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    delivery = hook([str(script)])
    assert not delivery.ok and "cannot run" in delivery.detail
    assert not hook([]).ok


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too: it only waits to be reaped by its parent
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    return True


def test_a_hanging_hook_is_killed_with_its_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # the shell ignores SIGTERM, so it takes the SIGKILL; its child sleeps in the same group
    script = f"trap '' TERM; sleep 60 & echo $$ $! > {pids}; wait"
    started = time.monotonic()
    delivery = hook(["sh", "-c", script], timeout=0.5)
    elapsed = time.monotonic() - started
    assert not delivery.ok and delivery.detail == "killed after the 0.5 s timeout"
    assert 0.5 <= elapsed < 0.5 + 2.5
    for pid in map(int, pids.read_text().split()):
        deadline = time.monotonic() + 2
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(pid), pid


def test_a_hook_leaving_a_child_on_its_output_is_stopped_at_the_timeout() -> None:
    started = time.monotonic()
    delivery = hook(["sh", "-c", "sleep 60 & exit 0"], timeout=0.5)
    assert not delivery.ok and delivery.detail.startswith("exit 0, but processes it started")
    assert time.monotonic() - started < 0.5 + 2.5


def test_a_chatty_hook_is_captured_within_bounds() -> None:
    script = "import sys; sys.stdout.write('x' * 5_000_000); sys.stderr.write('y' * 100)"
    with capture_logs() as logs:
        delivery = hook([sys.executable, "-c", script])
    assert delivery.ok
    assert len(logs[0]["stdout"]) <= LOGGED_OUTPUT + 2 and logs[0]["stderr"] == "y" * 100


def test_a_hook_that_ignores_stdin_is_fine() -> None:
    assert hook(["true"]).ok


def test_cancelling_a_hook_kills_it(tmp_path: Path) -> None:
    pids = tmp_path / "pid"

    async def cancel_soon() -> None:
        task = asyncio.create_task(
            run_command(["sh", "-c", f"echo $$ > {pids}; exec sleep 60"], EVENT, timeout=30)
        )
        deadline = time.monotonic() + 10
        while not pids.exists() or not pids.read_text().strip():
            assert time.monotonic() < deadline, "the hook did not start"
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_soon())
    pid = int(pids.read_text())
    assert not pid_alive(pid)


# -- the event and the secret ---------------------------------------------------------------


def test_event_json() -> None:
    document = json.loads(EVENT.to_json())
    assert document == {
        "version": 1,
        "kind": "job.done",
        "job_id": 42,
        "state": "done",
        "folder": "/srv/podcast/inbox",
        "input": "shows/Folge 12, Über Nacht.wav",
        "outputs": list(EVENT.outputs),
        "error": None,
        "at": 1732611200.5,
        "time": "2024-11-26T08:53:20+00:00",
    }
    assert "Über".encode() in EVENT.to_json()  # UTF-8, not \\u escapes


def test_read_secret(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(SECRET + b"\n")
    path.chmod(0o600)
    assert read_secret(path) == SECRET
    path.chmod(0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_secret(path)
    path.chmod(0o604)
    with pytest.raises(ConfigError, match="other users"):
        read_secret(path)
    path.write_bytes(b" \n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="empty"):
        read_secret(path)
    with pytest.raises(ConfigError, match="cannot read"):
        read_secret(tmp_path / "missing")
