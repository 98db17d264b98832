"""Memory and the systemd watchdog while the largest result the cap allows is rendered.

A stand-in Cleanvoice on 127.0.0.1 answers one recording's poll with a result whose JSON
is just under ``max_answer_mb`` (a transcript of hundreds of thousands of words, with a
summary and social posts). The daemon runs as a subprocess with every transcript format
on, a real ``NOTIFY_SOCKET`` bound here and ``WATCHDOG_USEC`` set, so it pings the
watchdog every half interval while its loops turn. Printed: the answer's size, the time
from the finished poll to done, the daemon's peak RSS (``VmHWM``) against its RSS at
rest, and the longest gap between two watchdog pings while the result was fetched,
parsed, stored and rendered (it must stay below the watchdog interval).

    python bench/render_peak.py [--mb 60] [--watchdog 2]
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
KEY = "bench-key-0123456789"
WORDS = [
    "this",
    "is",
    "a",
    "long",
    "transcript",
    "made",
    "up",
    "for",
    "the",
    "render",
    "bench",
    "of",
    "cvsyncd",
]


def small_wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        writer.writeframes(b"\0\0" * 8000)
    return buffer.getvalue()


def huge_result(target: int, origin: str) -> bytes:
    """A SUCCESS answer of about ``target`` bytes: words, paragraphs, a summary."""
    count = 10_000
    for _ in range(3):  # calibrate the word count to the size wanted
        body = result_of(count, origin)
        count = int(count * target / len(body))
    return result_of(count, origin)


def result_of(count: int, origin: str) -> bytes:
    words, paragraphs, simple = [], [], []
    for i in range(count):
        words.append({"id": i, "start": i * 0.4, "end": i * 0.4 + 0.35, "text": WORDS[i % 12]})
    for p in range(0, count, 40):
        end = min(p + 40, count) - 1
        paragraphs.append(
            {
                "id": p // 40,
                "start": p * 0.4,
                "end": end * 0.4 + 0.35,
                "speaker": f"SPEAKER_0{p % 2}",
            }
        )
        simple.append({"start": p * 0.4, "end": end * 0.4 + 0.35, "text": "text " * 30})
    hours = count * 0.4 / 3600
    result = {
        "video": False,
        "filename": "bench",
        "download_url": f"{origin}/file/bench.wav",
        "statistics": {
            "BREATH": 1,
            "DEADAIR": 1,
            "STUTTERING": 0,
            "MOUTH_SOUND": 0,
            "FILLER_SOUND": 1,
        },
        "transcription": {
            "paragraphs": simple,
            "transcription": {"words": words, "paragraphs": paragraphs},
        },
        "summarization": {
            "title": f"A {hours:.0f}-hour bench",
            "summary": "summary " * 200,
            "chapters": [
                {"start": c * 300.0, "title": f"Chapter {c}"} for c in range(int(hours * 12))
            ],
            "summaries": ["a chapter"] * int(hours * 12),
            "key_learnings": "- learnt",
            "summary_of_summary": "short",
            "episode_description": "long",
        },
        "social_content": {"newsletter": "n", "twitter_thread": "t", "linkedin": "l"},
        "merged_audio_url": [],
        "timestamps_markers_urls": [],
        "waveform_result": None,
    }
    return json.dumps({"status": "SUCCESS", "task_id": "bench-edit", "result": result}).encode()


class StandIn(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    answer = b""
    wav = b""

    def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        origin = f"http://{self.headers['Host']}"
        if self.path.startswith("/v2/upload"):
            self._send(200, json.dumps({"signedUrl": f"{origin}/put/bench.wav?sig=1"}).encode())
        else:
            self._send(200, b'{"id": "bench-edit"}')

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self._send(200, b"")

    def do_GET(self) -> None:
        if self.path.startswith("/v2/edits/"):
            self._send(200, self.answer)
        elif self.path.startswith("/file/"):
            self._send(200, self.wav, "audio/wav")
        else:
            self._send(200, b'{"credit": {"total": 100}}')

    def do_DELETE(self) -> None:
        self._send(200, b"{}")

    def log_message(self, *args: Any) -> None:
        pass


def peak_rss_kb(pid: int) -> tuple[int, int]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmHWM"].split()[0]), int(fields["VmRSS"].split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=30.0, help="size of the result (MiB)")
    parser.add_argument("--cap-mb", type=float, default=32.0, help="max_answer_mb")
    parser.add_argument("--watchdog", type=float, default=2.0, help="WatchdogSec, seconds")
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    StandIn.answer = huge_result(int(args.mb * 2**20), origin)
    StandIn.wav = small_wav()
    threading.Thread(target=server.serve_forever, daemon=True).start()

    root = Path(tempfile.mkdtemp(prefix="cvsyncd-render-bench-"))
    for name in ("inbox", "outbox"):
        (root / name).mkdir()
    key = root / "key"
    key.write_text(KEY)
    key.chmod(0o600)
    (root / "config.toml").write_text(
        f'[cleanvoice]\nbase_url = "{origin}/v2"\napi_key_file = "key"\n'
        f"max_answer_mb = {args.cap_mb}\n\n"
        '[daemon]\nstate_dir = "state"\nsettle_seconds = 0.3\npoll_initial_seconds = 0.5\n'
        "poll_min_seconds = 0.2\n\n"
        "[presets.all]\ntranscription = true\nsummarize = true\nsocial_content = true\n\n"
        '[[folders]]\ninbox = "inbox"\noutbox = "outbox"\npreset = "all"\nafter = "keep"\n'
        'transcript_formats = ["txt", "srt", "vtt", "json", "md", "html", "docx"]\n'
    )
    notify = root / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(0.05)
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(notify),
        "WATCHDOG_USEC": str(int(args.watchdog * 1e6)),
        "PYTHONPATH": str(REPO),
    }
    daemon = subprocess.Popen(
        [sys.executable, "-m", "cvsyncd", "run", "-c", "config.toml"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    env["WATCHDOG_PID"] = str(daemon.pid)  # (the daemon checks it only when set)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(daemon.stdout or []), daemon=True).start()

    def seen(event: str) -> bool:
        return any(f'"event": "{event}"' in line for line in list(lines))

    pings: list[float] = []
    deadline = time.monotonic() + 60
    while not seen("daemon.started") and time.monotonic() < deadline:
        try:
            if b"WATCHDOG=1" in sock.recv(4096):
                pings.append(time.monotonic())
        except TimeoutError:
            pass
    rest_hwm, rest_rss = peak_rss_kb(daemon.pid)
    (root / "inbox" / "bench.wav").write_bytes(StandIn.wav)
    first_poll = finished = None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            if b"WATCHDOG=1" in sock.recv(4096):
                pings.append(time.monotonic())
        except TimeoutError:
            pass
        if first_poll is None and seen("job.submitted"):
            first_poll = time.monotonic()
        if seen("job.done") or seen("job.failed"):
            finished = time.monotonic()
            break
    hwm, rss = peak_rss_kb(daemon.pid)
    daemon.terminate()
    daemon.wait(timeout=60)
    if finished is None or first_poll is None or not seen("job.done"):
        print("the recording did not finish:\n" + "".join(lines[-20:]))
        sys.exit(1)
    window = [t for t in pings if first_poll <= t <= finished]
    edges = [first_poll, *window, finished]
    gap = max(b - a for a, b in itertools.pairwise(edges))
    outputs = sorted(p.name for p in (root / "outbox").iterdir())
    print(f"result answer        {len(StandIn.answer) / 2**20:.1f} MiB (cap {args.cap_mb:g} MiB)")
    written = sum((root / "outbox" / n).stat().st_size for n in outputs) / 2**20
    print(f"outputs              {len(outputs)} files, {written:.1f} MiB")
    print(f"submitted → done     {finished - first_poll:.1f} s")
    print(f"RSS at rest          {rest_rss / 1024:.1f} MiB (peak so far {rest_hwm / 1024:.1f} MiB)")
    print(f"peak RSS             {hwm / 1024:.1f} MiB (VmHWM), {rss / 1024:.1f} MiB after")
    print(f"watchdog pings       {len(window)} in the window, every {args.watchdog / 2:g} s asked")
    print(f"longest ping gap     {gap:.2f} s (the watchdog fires after {args.watchdog:g} s)")
    server.shutdown()


if __name__ == "__main__":
    main()
