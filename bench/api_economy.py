"""API requests per recording for a simulated one-hour recording, under default settings.

The daemon runs as a subprocess against the emulator. A real one-hour WAV (8 kHz mono)
is dropped into an inbox; Cleanvoice's processing time for it (5, 7.5 or 10 minutes, the
docs' range) is emulated with time scaled down by SCALE, and the daemon's timing settings
are scaled by the same factor, so its schedule is exactly the default one, only faster.
The emulator's request log gives the count. Target: at most 12 API requests per recording
(sign, upload, create, polls, delete); downloads are listed apart.

    python bench/api_economy.py [--scale 0.01]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import wave
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cvsyncd.config import CleanvoiceSettings, DaemonSettings  # noqa: E402
from cvsyncd.emulator import Emulator  # noqa: E402

KEY = "bench-key-0123456789"
API_ENDPOINTS = ("upload", "put", "create", "get", "delete", "account")


def write_hour_of_audio(path: Path, seconds: int = 3600, rate: int = 8000) -> None:
    """A real WAV of ``seconds`` (a quiet sawtooth), written in blocks."""
    block = b"".join(struct.pack("<h", (i % 200) * 20 - 2000) for i in range(rate))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        for _ in range(seconds):
            w.writeframes(block)


def scaled_config(root: Path, base_url: str, scale: float) -> Path:
    daemon = DaemonSettings(state_dir=root / "state")
    cleanvoice = CleanvoiceSettings()
    config = root / "cvsyncd.toml"
    config.write_text(f"""
[cleanvoice]
base_url = "{base_url}"
api_key_file = "api_key"
expected_processing_ratio = {cleanvoice.expected_processing_ratio * scale}

[daemon]
state_dir = "state"
settle_seconds = {daemon.settle_seconds * scale}
poll_initial_seconds = {daemon.poll_initial_seconds * scale}
poll_max_seconds = {daemon.poll_max_seconds * scale}
poll_min_seconds = {daemon.poll_min_seconds * scale}
retry_initial_seconds = {daemon.retry_initial_seconds * scale}

[[folders]]
inbox = "inbox"
outbox = "outbox"
preset = {{ fillers = true, long_silences = true, transcription = true, export_timestamps = true }}
after = "keep"
""")
    key = root / "api_key"
    key.write_text(KEY)
    os.chmod(key, 0o600)
    return config


def run_once(recording: Path, processing_minutes: float, scale: float) -> Counter[str]:
    root = Path(tempfile.mkdtemp(prefix="cvsyncd-economy-"))
    try:
        emulator = Emulator(
            root / "emulator", api_key=KEY, processing_seconds=processing_minutes * 60 * scale
        )
        emulator.start()
        try:
            config = scaled_config(root, emulator.base_url, scale)
            (root / "inbox").mkdir()
            (root / "outbox").mkdir()
            os.link(recording, root / "inbox" / "episode.wav")
            proc = subprocess.Popen(
                [sys.executable, "-m", "cvsyncd", "run", "-c", str(config)],
                cwd=root,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            assert proc.stdout is not None
            deadline = time.monotonic() + 120
            for line in proc.stdout:
                if '"event": "job.done"' in line or time.monotonic() > deadline:
                    break
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            return Counter(r["endpoint"] for r in emulator.requests())
        finally:
            emulator.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale",
        type=float,
        default=0.01,
        help="time scale of the simulation (default 0.01: an hour's "
        "processing of 7.5 min takes 4.5 s)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cvsyncd-economy-audio-") as tmp:
        recording = Path(tmp) / "hour.wav"
        write_hour_of_audio(recording)
        print(
            f"recording: 60 min WAV, {recording.stat().st_size / 1e6:.1f} MB; "
            f"time scale {args.scale}; default poll settings and expected_processing_ratio"
        )
        header = (
            f"{'processing':>11} | "
            + " | ".join(f"{e:>7}" for e in API_ENDPOINTS)
            + " | API total | downloads"
        )
        print(header)
        print("-" * len(header))
        results = {}
        for minutes in (5.0, 7.5, 10.0):
            counts = run_once(recording, minutes, args.scale)
            total = sum(counts[e] for e in API_ENDPOINTS)
            results[minutes] = total
            print(
                f"{minutes:>8.1f} min | "
                + " | ".join(f"{counts[e]:>7}" for e in API_ENDPOINTS)
                + f" | {total:>9} | {counts['download']:>9}"
            )
        worst = max(results.values())
        print(
            f"\nworst case: {worst} API requests per recording (target <= 12): "
            f"{'met' if worst <= 12 else 'NOT met'}"
        )
        print(json.dumps({"api_requests_per_recording": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
