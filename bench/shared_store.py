"""Several daemons (sites) against one shared PostgreSQL store: what it costs and how fast.

Starts a throwaway PostgreSQL server (tests/pgserver.py: initdb + pg_ctl, as nobody when
run as root) that logs every statement, and the emulator. For N = 2 and 4 sites, N
daemons (``cvsyncd run`` subprocesses, each with its own inbox and state directory, one
key) share one database; each site gets RECORDINGS new recordings dropped at once. It
prints, per N:

- submit requests (uploads and create-edits): how many, over how long, and the most in
  any 60 s window — the requests per minute the key saw (it allows 30: the shared budget
  must hold that, whatever N is);
- database round trips (statements the server executed) per recording, with the idle
  polling of the daemons measured apart and taken out;
- time from drop to upload start (job.uploading), median and max.

    python bench/shared_store.py [--recordings 6] [--sites 2 4]
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
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cvsyncd.emulator import Emulator  # noqa: E402
from tests.conftest import make_wav  # noqa: E402
from tests.pgserver import PG_PASSWORD, PgServer, PgUnavailable  # noqa: E402

KEY = "bench-key-0123456789"
IDLE_SECONDS = 10.0


class Daemon:
    def __init__(self, root: Path, site: str, base_url: str, url: str):
        self.root, self.site = root, site
        self.inbox = root / "inbox"
        self.inbox.mkdir(parents=True)
        (root / "outbox").mkdir()
        (root / "api_key").write_text(KEY + "\n")
        (root / "api_key").chmod(0o600)
        (root / "pg-password").write_text(PG_PASSWORD + "\n")
        (root / "pg-password").chmod(0o600)
        self.config = root / "cvsyncd.toml"
        self.config.write_text(f"""
[cleanvoice]
base_url = "{base_url}"
api_key_file = "api_key"
expected_processing_ratio = 0.0001

[daemon]
state_dir = "state"
settle_seconds = 0.5
poll_initial_seconds = 0.5
poll_min_seconds = 0.2
poll_max_seconds = 1

[store]
url = "{url}"
password_file = "pg-password"
site = "{site}"

[presets.podcast]
fillers = true

[[folders]]
inbox = "inbox"
outbox = "outbox"
preset = "podcast"
after = "keep"
""")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEANVOICE", "CVSYNCD"))}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cvsyncd", "run", "-c", str(self.config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**env, "PYTHONUNBUFFERED": "1"},
            cwd=root,
        )
        self.events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.events.append(json.loads(line))
            except json.JSONDecodeError:
                continue

    def seen(self, event: str) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e.get("event") == event]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        self._reader.join(5)


def wait(predicate: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def statements(server: PgServer) -> int:
    """Statements the server executed so far (log_statement = all)."""
    text = (server.dir / "log").read_text(errors="replace")
    return text.count("LOG:  statement: ") + text.count("LOG:  execute ")


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def run(server: PgServer, sites: int, recordings: int) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="cvsyncd-bench-shared-"))
    emulator = Emulator(root / "emulator", api_key=KEY, processing_seconds=1.0)
    emulator.start()
    daemons: list[Daemon] = []
    try:
        url = server.url(server.database())
        daemons = [
            Daemon(root / f"site{n}", f"site-{n}", emulator.base_url, url) for n in range(sites)
        ]
        for d in daemons:
            wait(lambda d=d: d.seen("daemon.started"), f"{d.site} started", 60)
        before_idle = statements(server)
        time.sleep(IDLE_SECONDS)  # measuring the idle polling: a fixed span on purpose
        idle_rate = (statements(server) - before_idle) / IDLE_SECONDS  # all daemons, per s
        dropped: dict[str, float] = {}
        start_count = statements(server)
        started = time.time()
        for d in daemons:
            for r in range(recordings):
                tmp = d.root / f".r{r}.tmp"
                make_wav(tmp, seconds=1.0, freq=150 + 37 * r + 500 * int(d.site[-1]))
                tmp.rename(d.inbox / f"r{r}.wav")
                dropped[f"{d.site}/r{r}.wav"] = time.time()
        total = sites * recordings
        wait(
            lambda: sum(len(d.seen("job.done")) for d in daemons) >= total,
            "every recording done",
            60 * (2 + 2 * total // 30),
        )
        elapsed = time.time() - started
        used = statements(server) - start_count - idle_rate * elapsed
        waits = [
            epoch(e["timestamp"]) - dropped[f"{d.site}/{e['path']}"]
            for d in daemons
            for e in d.seen("job.uploading")
        ]
        submits = sorted(
            epoch(r["ts"])
            for r in emulator.requests()
            if r.get("endpoint") in ("upload", "create") and r.get("status") == 200
        )
        busiest = max(sum(1 for t in submits if s <= t < s + 60) for s in submits) if submits else 0
        return {
            "recordings": total,
            "elapsed_s": elapsed,
            "submits": len(submits),
            "busiest_60s": busiest,
            "round_trips_per_recording": used / total,
            "idle_round_trips_per_daemon_min": idle_rate * 60 / sites,
            "drop_to_upload_median_s": statistics.median(waits),
            "drop_to_upload_max_s": max(waits),
        }
    finally:
        for d in daemons:
            if d.proc.poll() is None:
                d.stop()
        emulator.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=6, help="new recordings per site")
    parser.add_argument("--sites", type=int, nargs="+", default=[2, 4])
    args = parser.parse_args()
    server = PgServer()
    server.extra_options = "-c log_statement=all -c log_line_prefix=''"
    try:
        server.start()
    except PgUnavailable as exc:
        print(f"PostgreSQL cannot run here: {exc}")
        return 1
    try:
        print(
            f"{'sites':>5} | {'recs':>4} | {'submits':>7} | {'run':>6} | {'most in 60 s':>12} | "
            f"{'DB trips/rec':>12} | {'idle trips/daemon/min':>21} | "
            f"{'drop→upload median':>18} | {'max':>6}"
        )
        for n in args.sites:
            f = run(server, n, args.recordings)
            print(
                f"{n:>5} | {f['recordings']:>4.0f} | {f['submits']:>7.0f} | "
                f"{f['elapsed_s']:>4.0f} s | "
                f"{f['busiest_60s']:>12.0f} | {f['round_trips_per_recording']:>12.1f} | "
                f"{f['idle_round_trips_per_daemon_min']:>21.1f} | "
                f"{f['drop_to_upload_median_s']:>16.1f} s | {f['drop_to_upload_max_s']:>4.1f} s"
            )
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
