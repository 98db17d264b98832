"""Results podcasters use, end to end: a folder asking for everything produces every file,
each readable by the tool it is meant for; hooks and a signed webhook tell others; a job's
files can be rendered again without the API."""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import docx
import pytest
import srt
import webvtt

from cvsyncd.emulator import Emulator
from cvsyncd.notify.webhook import verify_signature
from tests.conftest import Setup, creates, make_wav

pytestmark = pytest.mark.e2e

EVERYTHING = """fillers = true
transcription = true
summarize = true
social_content = true
export_timestamps = true"""


class Receiver(BaseHTTPRequestHandler):
    """A webhook receiver on 127.0.0.1 that keeps what it got."""

    got: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:  # the name http.server calls
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).got.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


NOTIFY_EVENTS = ("notify.sent", "notify.failed")


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.got = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/cvsyncd"
    finally:
        server.shutdown()
        server.server_close()


def test_every_output_of_a_full_preset(tmp_path: Path, emulator: Emulator, receiver: str) -> None:
    secret = tmp_path / "webhook_secret"
    secret.write_text("s3cret-for-signing\n")
    os.chmod(secret, 0o600)
    hook_out = tmp_path / "hook.json"
    hook = tmp_path / "hook.sh"
    hook.write_text(
        f'#!/bin/sh\nenv | grep -q NOTIFY_SOCKET && exit 9\ncat > "{hook_out}"\n'
        f'echo "$CVSYNCD_EVENT $CVSYNCD_INPUT" >> "{hook_out}.env"\n'
    )
    hook.chmod(0o755)
    setup = Setup(
        tmp_path,
        emulator.base_url,
        after="keep",
        preset=EVERYTHING,
        extra_folder=(
            'transcript_formats = ["txt", "srt", "vtt", "json", "md", "html", "docx"]\n'
            'speakers = ["Ana", "Ben"]\n'
            'file_mode = "0640"\n'
            f'on_done = ["{hook}"]\n'
            f'notify_url = "{receiver}"\n'
            f'notify_secret_file = "{secret}"\n'
        ),
    )
    make_wav(setup.inbox / "show" / "ep12.wav", seconds=90)
    daemon = setup.daemon(env={"NOTIFY_SOCKET": "/nonexistent/socket"})
    try:
        daemon.wait_for_event("job.done", path="show/ep12.wav", timeout=60)
        daemon.wait_for_event("notify.sent", target="webhook")
        daemon.wait_for_event("notify.sent", target="command")
    finally:
        assert daemon.stop() == 0
    out = setup.outbox / "show"
    names = sorted(p.name for p in out.iterdir())
    # in varied mode the marker files may come as a list that also holds a JSON cut list
    listed_json = emulator.variants.served[("markers-shape", "list-with-json")] > 0
    assert names == sorted(
        [
            *(["ep12.markers.timestamps.json"] if listed_json else []),
            "ep12.wav",
            "ep12.cleanvoice.json",
            "ep12.transcript.txt",
            "ep12.transcript.srt",
            "ep12.transcript.vtt",
            "ep12.transcript.json",
            "ep12.transcript.md",
            "ep12.transcript.html",
            "ep12.transcript.docx",
            "ep12.summary.md",
            "ep12.chapters.json",
            "ep12.chapters.txt",
            "ep12.social.md",
            "ep12.markers.timeline_audacity.txt",
            "ep12.markers.reaper.csv",
            "ep12.markers.audition.csv",
            "ep12.markers.cuts.json",
        ]
    )
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert len(creates(emulator)) == 1

    cues = list(srt.parse((out / "ep12.transcript.srt").read_text()))
    assert cues and all(c.end > c.start for c in cues)
    assert all(a.end <= b.start for a, b in itertools.pairwise(cues))
    vtt = webvtt.read(str(out / "ep12.transcript.vtt"))
    assert len(vtt.captions) == len(cues)
    txt = (out / "ep12.transcript.txt").read_text()
    assert "Ana:" in txt and "Ben:" in txt and "SPEAKER_00" not in txt
    document = docx.Document(str(out / "ep12.transcript.docx"))
    assert any("emulated transcript" in p.text for p in document.paragraphs)
    chapters = json.loads((out / "ep12.chapters.json").read_text())
    assert chapters["version"] == "1.2.0" and chapters["chapters"][0]["startTime"] == 0
    assert (out / "ep12.chapters.txt").read_text().startswith("00:00:00.000 ")
    reaper = list(csv.reader(io.StringIO((out / "ep12.markers.reaper.csv").read_text())))
    labels = (out / "ep12.markers.timeline_audacity.txt").read_text().strip().splitlines()
    assert len(reaper) - 1 == len(labels)
    cuts = json.loads((out / "ep12.markers.cuts.json").read_text())
    assert {c["action"] for c in cuts} <= {"cut", "mute"} and len(cuts) == len(labels)

    # the hook: JSON on stdin, the event in its environment, no NOTIFY_SOCKET
    event = json.loads(hook_out.read_text())
    assert event["kind"] == "job.done" and event["input"] == "show/ep12.wav"
    assert (tmp_path / "hook.json.env").read_text().strip() == "job.done show/ep12.wav"
    # the webhook: signed, and the signature verifies
    [(headers, body)] = Receiver.got
    assert verify_signature(
        b"s3cret-for-signing", headers["x-cvsyncd-timestamp"], body, headers["x-cvsyncd-signature"]
    )
    assert not verify_signature(
        b"s3cret-for-signing",
        headers["x-cvsyncd-timestamp"],
        body.replace(b"done", b"dune"),
        headers["x-cvsyncd-signature"],
    )
    assert json.loads(body)["outputs"]
    [job] = setup.jobs()
    shown = json.loads(setup.cli("show", "-c", str(setup.config), str(job["id"]), "--json").stdout)
    assert [n["target"] for n in shown["facts"]["notifications"]] == ["command", "webhook"]
    assert all(n["ok"] for n in shown["facts"]["notifications"])


def test_a_failing_or_hanging_hook_does_not_affect_the_job(
    tmp_path: Path, emulator: Emulator
) -> None:
    setup = Setup(
        tmp_path,
        emulator.base_url,
        after="move",
        extra_folder=(
            'on_done = ["/bin/sh", "-c", "sleep 30"]\nhook_timeout_seconds = 1\n'
            'on_failed = ["/bin/false"]\n'
        ),
    )
    make_wav(setup.inbox / "a.wav")
    (setup.inbox / "b.wav").write_text("not audio" * 50)
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.done", path="a.wav")
        daemon.wait_for_event("job.failed", path="b.wav")
        daemon.wait_for(
            lambda: sum(e.get("event") in NOTIFY_EVENTS for e in daemon.events()) == 2,
            what="both hooks ran",
        )
    finally:
        assert daemon.stop() == 0
    states = {j["name"]: j["state"] for j in setup.jobs()}
    assert states == {"a.wav": "done", "b.wav": "failed"}
    notes = [e for e in daemon.events() if e.get("event") in NOTIFY_EVENTS]
    assert [(n["event"], n["ok"]) for n in notes] == [("notify.failed", False)] * 2


def test_render_again_after_changing_formats_and_speakers(
    tmp_path: Path, emulator: Emulator
) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep", preset=EVERYTHING)
    make_wav(setup.inbox / "ep.wav", seconds=30)
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.done", path="ep.wav")
    finally:
        assert daemon.stop() == 0
    assert not (setup.outbox / "ep.transcript.html").exists()
    requests = len(emulator.requests())
    setup.config.write_text(
        setup.config.read_text() + 'transcript_formats = ["txt", "html"]\n'
        'speakers = ["Host", "Guest"]\n'
    )
    [job] = setup.jobs()
    proc = setup.cli("render", "-c", str(setup.config), str(job["id"]))
    assert proc.returncode == 0, proc.stderr
    assert "ep.transcript.html" in proc.stdout
    assert "Host:" in (setup.outbox / "ep.transcript.txt").read_text()
    assert (setup.outbox / "ep.transcript.html").exists()
    assert len(emulator.requests()) == requests  # rendered from the stored result alone
