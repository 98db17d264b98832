"""Soak: 1,000 short recordings dropped at once into several inboxes, against the emulator
with a small fault rate; then a restart with 100,000 job rows and 10,000 files.

Reports: wall time, daemon CPU seconds per recording, peak RSS (target <= 150 MB), API
requests per recording, duplicate creates (must be 0), and the time from starting the
daemon to READY=1 on a restart with 100,000 job rows in the store and 10,000 files in the
inboxes (target <= 3 s).

The reference, in the same run: the official SDK (``cleanvoice-sdk``) taking the same
recordings through upload, create, poll and download on 32 threads against a fresh
emulator, keeping nothing (no state, no watching, no retries: it gets no faults). Its CPU
is measured like the daemon's, the whole process, start-up included (``--no-sdk`` skips it).

The API's per-key request limits (30 creates a minute) would make 1,000 recordings an
hour-long wait that measures the API, not the daemon: the emulator's limits are lifted and
the daemon's budget raised for this run (as on a plan with higher limits).

    python bench/soak.py [--recordings 1000] [--folders 4] [--fault-rate 0.02] [--no-sdk]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections import Counter
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cvsyncd.emulator import Emulator, FaultSettings  # noqa: E402
from cvsyncd.jobs.store import DB_NAME, Store, options_key  # noqa: E402

KEY = "soak-key-0123456789"
GOALS = {"cpu_seconds_per_recording": 0.010, "peak_rss_mb": 150.0, "duplicate_creates": 0}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
API = ("upload", "put", "create", "get", "delete", "account")
OPTIONS = {"fillers": True}


def wav(path: Path, salt: int, frames: int = 4000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(struct.pack("<i", salt) * (frames // 2))


def write_config(root: Path, base_url: str, folders: int) -> Path:
    lines = [
        f'''[cleanvoice]
base_url = "{base_url}"
api_key_file = "api_key"
submit_requests_per_minute = 100000
status_requests_per_minute = 100000
expected_processing_ratio = 0.0001

[daemon]
state_dir = "state"
settle_seconds = 1
poll_initial_seconds = 0.5
poll_min_seconds = 0.25
poll_max_seconds = 2
max_concurrent_uploads = 8
max_active_edits = 32
retry_initial_seconds = 0.2
retry_max_seconds = 2
log_level = "warning"
'''
    ]
    for i in range(folders):
        (root / f"inbox{i}").mkdir(exist_ok=True)
        (root / f"outbox{i}").mkdir(exist_ok=True)
        lines.append(
            f'[[folders]]\ninbox = "inbox{i}"\noutbox = "outbox{i}"\n'
            f'preset = {{ fillers = true }}\nafter = "keep"\n'
        )
    config = root / "cvsyncd.toml"
    config.write_text("\n".join(lines))
    (root / "api_key").write_text(KEY)
    os.chmod(root / "api_key", 0o600)
    return config


def proc_stats(pid: int) -> tuple[float, float]:
    """CPU seconds and peak RSS (MB) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    hwm = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    return cpu, hwm


def count_states(state_dir: Path) -> Counter[str]:
    conn = sqlite3.connect(f"file:{state_dir / DB_NAME}?mode=ro", uri=True, timeout=30)
    try:
        return Counter(dict(conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state")))
    finally:
        conn.close()


def soak(root: Path, recordings: int, folders: int, fault_rate: float) -> dict[str, float]:
    faults = FaultSettings(
        rate=fault_rate,
        kinds=frozenset({"429", "503", "reset", "slow", "truncate", "500-after", "expired-url"}),
        slow_seconds=0.5,
    )
    emulator = Emulator(
        root / "emulator",
        api_key=KEY,
        processing_seconds=0.5,
        rate_limits=False,
        faults=faults,
        seed=7,
    )
    emulator.start()
    try:
        config = write_config(root, emulator.base_url, folders)
        staging = root / "staging"
        for i in range(recordings):
            wav(staging / f"inbox{i % folders}" / f"show{i % 10}" / f"ep{i:04d}.wav", i)
        proc = subprocess.Popen(
            [sys.executable, "-m", "cvsyncd", "run", "-c", str(config)],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(2)
        start = time.monotonic()
        for i in range(folders):  # dropped at once
            for show in (staging / f"inbox{i}").iterdir():
                os.rename(show, root / f"inbox{i}" / show.name)
        final = ("done", "needs_attention", "failed", "duplicate")
        counts: Counter[str] = Counter()
        peak = 0.0
        while time.monotonic() - start < 3600:
            counts = (
                count_states(root / "state") if (root / "state" / DB_NAME).exists() else Counter()
            )
            peak = max(peak, proc_stats(proc.pid)[1])
            if sum(counts[s] for s in final) >= recordings:
                break
            time.sleep(0.5)
        wall = time.monotonic() - start
        cpu, hwm = proc_stats(proc.pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=300)
        requests = emulator.requests()
        creates = Counter(
            unquote(PurePosixPath(urlsplit(r["files"][0]).path).name)
            for r in requests
            if r["endpoint"] == "create" and r["processed"]
        )
        api = sum(1 for r in requests if r["endpoint"] in API)
        return {
            "recordings": recordings,
            "wall_seconds": round(wall, 1),
            "cpu_seconds_per_recording": round(cpu / recordings, 4),
            "peak_rss_mb": round(max(peak, hwm), 1),
            "api_requests_per_recording": round(api / recordings, 2),
            "duplicate_creates": sum(n - 1 for n in creates.values() if n > 1),
            "done": counts["done"],
            "needs_attention": counts["needs_attention"],
            "failed": counts["failed"],
            "faults_injected": sum(1 for r in requests if r.get("fault")),
        }
    finally:
        emulator.stop()


SDK_THREADS = 32
# The official SDK (cleanvoice-sdk, as published) driven the way its README shows, on
# SDK_THREADS threads: upload, create, poll, download for each file, nothing kept.
SDK_SCRIPT = """
import os, sys, threading
from cleanvoice import Cleanvoice
base_url, key, out_dir, threads, *files = sys.argv[1:]
todo = list(enumerate(files))
lock = threading.Lock()
failures = []

def work():
    with Cleanvoice(api_key=key, base_url=base_url) as client:
        while True:
            with lock:
                if not todo:
                    return
                n, path = todo.pop()
            try:
                client.process(path, fillers=True, output_path=os.path.join(out_dir, f"{n}.wav"))
            except Exception as exc:
                failures.append(repr(exc))

pool = [threading.Thread(target=work) for _ in range(int(threads))]
for t in pool:
    t.start()
for t in pool:
    t.join()
times = os.times()
print(times.user + times.system, len(failures))
"""


def sdk_reference(root: Path, files: list[Path]) -> dict[str, float]:
    """The same recordings through the official SDK against a fresh emulator (no faults:
    the SDK does not retry), its CPU measured the same way as the daemon's: the whole
    process, start-up included."""
    emulator = Emulator(
        root / "emulator-sdk", api_key=KEY, processing_seconds=0.5, rate_limits=False
    )
    emulator.start()
    try:
        out = root / "sdk-out"
        out.mkdir()
        start = time.monotonic()
        answer = subprocess.run(
            [
                sys.executable,
                "-c",
                SDK_SCRIPT,
                emulator.base_url,
                KEY,
                str(out),
                str(SDK_THREADS),
                *map(str, files),
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        wall = time.monotonic() - start
        cpu, failures = answer.stdout.split()
        api = sum(1 for r in emulator.requests() if r["endpoint"] in API)
        return {
            "sdk_wall_seconds": round(wall, 1),
            "sdk_cpu_seconds_per_recording": round(float(cpu) / len(files), 4),
            "sdk_api_requests_per_recording": round(api / len(files), 2),
            "sdk_failures": int(failures),
        }
    finally:
        emulator.stop()


def fill_store(root: Path, rows: int, files: int, folders: int) -> None:
    """Add done jobs until the store holds ``rows``, ``files`` of them for real files."""
    Store.open(root / "state").close()  # created and migrated by the real code
    conn = sqlite3.connect(root / "state" / DB_NAME)
    now = time.time()
    try:
        existing = conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        real = [p for i in range(folders) for p in (root / f"inbox{i}").rglob("*.wav")]
        conn.execute("BEGIN")
        for n in range(existing, rows):
            if n - existing < max(0, files - len(real)):
                folder = n % folders
                rel = f"archive/ep{n:06d}.wav"
                path = root / f"inbox{folder}" / rel
                wav(path, n + 1_000_000, frames=400)
                st = path.stat()
                inbox, size, mtime = str(root / f"inbox{folder}"), st.st_size, st.st_mtime_ns
            else:
                inbox, rel, size, mtime = str(root / "inbox0"), f"old/ep{n:06d}.wav", 1, n
            cur = conn.execute(
                "INSERT INTO jobs (folder, name, fingerprint, options, options_key, state,"
                " created_at, updated_at, finished_at) VALUES (?, ?, ?, ?, ?, 'done', ?, ?, ?)",
                (inbox, rel, f"{n:064x}", json.dumps(OPTIONS), options_key(OPTIONS), now, now, now),
            )
            conn.execute(
                "INSERT INTO inputs (job_id, position, rel_path, size, mtime_ns,"
                " fingerprint) VALUES (?, 0, ?, ?, ?, ?)",
                (cur.lastrowid, rel, size, mtime, f"{n:064x}"),
            )
        conn.execute("COMMIT")
    finally:
        conn.close()


def time_to_ready(root: Path, config: Path) -> float:
    """Seconds from starting the daemon to its READY=1."""
    address = root / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(address))
    sock.settimeout(60)
    ready = threading.Event()

    def listen() -> None:
        while not ready.is_set():
            try:
                if b"READY=1" in sock.recv(4096):
                    ready.set()
            except OSError:
                return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cvsyncd", "run", "-c", str(config)],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "NOTIFY_SOCKET": str(address)},
    )
    ready.wait(timeout=120)
    elapsed = time.monotonic() - start
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    sock.close()
    return elapsed


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=1000)
    parser.add_argument("--folders", type=int, default=4)
    parser.add_argument("--fault-rate", type=float, default=0.02)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument(
        "--no-sdk", action="store_true", help="skip the reference run of the official SDK"
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cvsyncd-soak-"))
    try:
        print(
            f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; "
            f"load average before: {load_average()}"
        )
        figures = soak(root, args.recordings, args.folders, args.fault_rate)
        if not args.no_sdk:
            files = sorted(root.glob("inbox*/show*/ep*.wav"))
            figures.update(sdk_reference(root, files))
            figures["cpu_ratio_to_sdk"] = round(
                figures["cpu_seconds_per_recording"] / figures["sdk_cpu_seconds_per_recording"], 2
            )
        for key, value in figures.items():
            goal = GOALS.get(key)
            verdict = ""
            if goal is not None:
                verdict = f" (goal ≤ {goal}: {'met' if value <= goal else 'NOT met'})"
            print(f"{key:>28}: {value}{verdict}")
        fill_store(root, args.rows, args.files, args.folders)
        emulator = Emulator(root / "emulator2", api_key=KEY)
        emulator.start()
        try:
            config = write_config(root, emulator.base_url, args.folders)
            ready = time_to_ready(root, config)
        finally:
            emulator.stop()
        print(
            f"{'time_to_ready_seconds':>28}: {ready:.2f} (with {args.rows} job rows and "
            f"{args.files} files; target <= 3 s)"
        )
        figures["time_to_ready_seconds"] = round(ready, 2)
        print(f"load average after: {load_average()}")
        print(json.dumps(figures))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
