"""Watching figures: how soon a finished file is taken, and what watching costs at rest.

1. Latency: a file is written and closed in an inbox; the time until its upload starts
   (the emulator's POST /upload), for inotify and for polling, with the settle window
   stated. Expected: settle_seconds plus a scheduler tick plus fingerprinting.
2. Idle cost over whole rescan cycles: the daemon watching 10,000 recordings it has
   already processed (after = "keep", as in an archive inbox). The daemon's CPU and RSS
   are read at the end of each rescan (its ``inbox.scanned`` log line, at debug level):
   the first is the scan at start; from there, ``--cycles`` whole cycles (the wait and the
   next rescan, ``--rescan-seconds`` apart, 300 s by default as in the config) give the
   average share of a core, and the RSS after each rescan shows whether memory stays flat.
   Goal with inotify: at most 0.1 % of a core averaged over a cycle, RSS flat.

    python bench/watch.py [--files 10000] [--rescan-seconds 300] [--cycles 2]
                          [--repeat 5] [--modes events,poll] [--no-latency]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cvsyncd.emulator import Emulator  # noqa: E402
from cvsyncd.jobs import InputFile, JobState  # noqa: E402
from cvsyncd.jobs.store import Store  # noqa: E402
from cvsyncd.outbox.files import sha256_file  # noqa: E402

KEY = "bench-key-0123456789"
SETTLE = 2.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def write_config(
    root: Path, base_url: str, watch: str, rescan: float = 300.0, level: str = "info"
) -> Path:
    config = root / "cvsyncd.toml"
    config.write_text(f"""
[cleanvoice]
base_url = "{base_url}"
api_key_file = "api_key"

[daemon]
state_dir = "state"
settle_seconds = {SETTLE}
log_level = "{level}"

[[folders]]
inbox = "inbox"
outbox = "outbox"
preset = {{ fillers = true }}
after = "keep"
watch = "{watch}"
rescan_seconds = {rescan}
""")
    key = root / "api_key"
    key.write_text(KEY)
    os.chmod(key, 0o600)
    (root / "inbox").mkdir(exist_ok=True)
    (root / "outbox").mkdir(exist_ok=True)
    return config


def tiny_wav(path: Path, frames: int = 800, salt: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(salt.to_bytes(4, "little") * (frames // 2))


def start_daemon(root: Path, config: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cvsyncd", "run", "-c", str(config)],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if event_of(line) == "inbox.watching":
            return proc
    raise RuntimeError("the daemon did not start")


def event_of(line: str) -> str | None:
    try:
        event = json.loads(line).get("event")
    except (ValueError, AttributeError):
        return None
    return event if isinstance(event, str) else None


def stop_daemon(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    if proc.stdout:
        proc.stdout.close()


def latency(watch: str, repeat: int) -> list[float]:
    """Seconds from a file's close to its upload request, ``repeat`` times."""
    root = Path(tempfile.mkdtemp(prefix="cvsyncd-bench-watch-"))
    emulator = Emulator(root / "emulator", api_key=KEY, processing_seconds=0.5)
    emulator.start()
    try:
        config = write_config(root, emulator.base_url, watch)
        proc = start_daemon(root, config)
        times = []
        try:
            for i in range(repeat):
                seen = len(emulator.requests())
                path = root / "inbox" / f"take{i}.wav"
                tiny_wav(path, frames=8000 * 10, salt=i + 1)  # 10 s of audio, closed here
                closed = time.time()
                while True:
                    new = [r for r in emulator.requests()[seen:] if r["endpoint"] == "upload"]
                    if new:
                        started = datetime.fromisoformat(new[0]["ts"].replace("Z", "+00:00"))
                        times.append(started.timestamp() - closed)
                        break
                    time.sleep(0.02)
                time.sleep(1.0)
        finally:
            stop_daemon(proc)
        return times
    finally:
        emulator.stop()
        shutil.rmtree(root, ignore_errors=True)


def prepare_archive(root: Path, files: int) -> None:
    """``files`` small recordings in nested folders, each already a done job."""
    store = Store.open(root / "state")
    try:
        for i in range(files):
            rel = f"show-{i % 20:02d}/season-{i % 7}/ep{i:05d}.wav"
            path = root / "inbox" / rel
            tiny_wav(path, salt=i)
            st = path.stat()
            job = store.create_job(
                str(root / "inbox"),
                rel,
                [InputFile(rel, st.st_size, st.st_mtime_ns, sha256_file(path))],
                {"fillers": True},
            )
            assert job is not None
            for state in (
                JobState.UPLOADING,
                JobState.UPLOADED,
                JobState.SUBMITTING,
                JobState.PROCESSING,
                JobState.FETCHING,
                JobState.WRITING,
                JobState.DISPOSING,
                JobState.DONE,
            ):
                job = store.transition(job.id, job.state, state)
    finally:
        store.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory(pid: int) -> dict[str, float]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values


@dataclass
class Mark:
    """The daemon at the end of a rescan."""

    at: float  # monotonic seconds
    cpu: float  # user + system seconds so far
    rss_mb: float


def idle(files: int, watch: str, rescan: float, cycles: int) -> dict[str, Any]:
    """Watch ``files`` known recordings for ``cycles`` whole rescan cycles."""
    root = Path(tempfile.mkdtemp(prefix="cvsyncd-bench-idle-"))
    emulator = Emulator(root / "emulator", api_key=KEY)
    emulator.start()
    try:
        config = write_config(root, emulator.base_url, watch, rescan, level="debug")
        prepare_archive(root, files)
        proc = start_daemon(root, config)
        marks: list[Mark] = []
        try:
            assert proc.stdout is not None
            for line in proc.stdout:  # the end of each rescan, as the daemon says it
                if event_of(line) == "inbox.scanned":
                    marks.append(
                        Mark(time.monotonic(), cpu_seconds(proc.pid), memory(proc.pid)["VmRSS"])
                    )
                    if len(marks) > cycles:
                        break
            peak = memory(proc.pid)["VmHWM"]
        finally:
            stop_daemon(proc)
        if len(marks) <= cycles:
            raise RuntimeError(f"the daemon logged {len(marks)} rescans, not {cycles + 1}")
        creates = [r for r in emulator.requests() if r["endpoint"] == "create"]
        first, last = marks[0], marks[-1]
        return {
            "cpu_percent": 100 * (last.cpu - first.cpu) / (last.at - first.at),
            "cpu_seconds_per_cycle": (last.cpu - first.cpu) / cycles,
            "cycle_seconds": (last.at - first.at) / cycles,
            "rss_after_each_rescan_mb": [round(m.rss_mb, 1) for m in marks],
            "peak_rss_mb": peak,
            "creates": len(creates),
        }
    finally:
        emulator.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--rescan-seconds", type=float, default=300.0)
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5, help="latency samples per mode")
    parser.add_argument("--modes", default="events,poll", help="watch modes to measure")
    parser.add_argument("--no-latency", action="store_true", help="idle figures only")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    print(
        f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; "
        f"settle_seconds = {SETTLE}; load average before: {load_average()}"
    )
    figures: dict[str, object] = {}
    for watch in [] if args.no_latency else modes:
        times = latency(watch, args.repeat)
        figures[f"latency_{watch}"] = times
        print(
            f"close → upload start, {watch:>6}: median {statistics.median(times):.2f} s "
            f"(min {min(times):.2f}, max {max(times):.2f}; settle {SETTLE} s)"
        )
    for watch in modes:
        result = idle(args.files, watch, args.rescan_seconds, args.cycles)
        figures[f"idle_{watch}"] = result
        goal = 0.1 if watch == "events" else None
        verdict = (
            f" (goal ≤ {goal} %: {'met' if result['cpu_percent'] <= goal else 'NOT met'})"
            if goal is not None
            else ""
        )
        rss = result["rss_after_each_rescan_mb"]
        print(
            f"idle, {args.files} files, {watch:>6}, {args.cycles} whole cycles of "
            f"{result['cycle_seconds']:.0f} s: CPU {result['cpu_percent']:.3f} % of a core"
            f"{verdict}, {result['cpu_seconds_per_cycle']:.2f} CPU-s per cycle; RSS after "
            f"each rescan {', '.join(f'{r:.1f}' for r in rss)} MB (a step of "
            f"{rss[-1] - rss[1] if len(rss) > 2 else 0.0:+.1f} MB after the first cycle); "
            f"peak {result['peak_rss_mb']:.1f} MB; creates {result['creates']}"
        )
    print(f"load average after: {load_average()}")
    print(json.dumps(figures))
    return 0


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
