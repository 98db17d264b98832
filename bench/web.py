"""The dashboard's figures: what it costs the daemon at rest, and how fast its pages are.

1. Idle: two daemons side by side on the same machine, each watching an empty inbox, one
   with ``[web]`` and one without; after a settling minute-fraction, their CPU (user +
   system, from /proc) over ``--idle-seconds`` and their RSS at the end. Nobody looks at
   the dashboard meanwhile (a browser tab polling /live is a different load: see 3).
2. Pages over a store of ``--rows`` jobs (default 100,000; 1 % failed), written straight
   into SQLite as in bench/cli.py: the median time of ``--runs`` requests (one HTTP client,
   keep-alive, on loopback) to the jobs page (first, a page deep in the list, filtered by
   state), the overview, one job, /metrics and /healthz.
3. The cost of an open overview tab: the daemon's CPU while a client fetches /live every
   2 s (what app.js does), over ``--idle-seconds``.

    python bench/web.py [--rows 100000] [--runs 15] [--idle-seconds 120]
    python bench/web.py --screenshot docs/dashboard.png --demo-root /srv/podcast
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cli import fill  # noqa: E402  (bench/cli.py: this script's folder is on sys.path)
from watch import cpu_seconds, memory  # noqa: E402

from cvsyncd.emulator import Emulator  # noqa: E402
from cvsyncd.jobs.database import DB_NAME  # noqa: E402

KEY = "bench-key-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config_text(base_url: str, web: int | None) -> str:
    text = (
        f'[cleanvoice]\nbase_url = "{base_url}"\napi_key_file = "key"\n'
        '[daemon]\nstate_dir = "state"\n[presets.p]\nfillers = true\n'
        '[[folders]]\ninbox = "inbox"\noutbox = "outbox"\npreset = "p"\nafter = "keep"\n'
    )
    if web is not None:
        text += f'[web]\nlisten = "127.0.0.1:{web}"\n'
    return text


def prepare(root: Path, base_url: str, web: int | None) -> Path:
    for name in ("inbox", "outbox"):
        (root / name).mkdir(parents=True, exist_ok=True)
    (root / "key").write_text(KEY + "\n")
    os.chmod(root / "key", 0o600)
    config = root / "cvsyncd.toml"
    config.write_text(config_text(base_url, web))
    return config


def start(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "cvsyncd", "run", "-c", str(config)],
        cwd=config.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the dashboard at {url} did not answer")


def wait_started(state: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (state / "health.json").exists():
            return
        time.sleep(0.2)
    raise SystemExit(f"the daemon of {state} did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=60)


def idle(base_url: str, seconds: float, settle: float = 20.0) -> dict[str, dict[str, float]]:
    """CPU % of a core and RSS of a daemon with and one without the dashboard, side by side,
    and of the one with it while a client polls /live every 2 s (one more run)."""
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        plain = start(prepare(Path(tmp) / "plain", base_url, None))
        web = start(prepare(Path(tmp) / "web", base_url, port))
        try:
            wait_started(Path(tmp) / "plain" / "state")
            wait_ready(f"http://127.0.0.1:{port}")
            time.sleep(settle)  # imports done, first scans and account checks over
            begin = {p.pid: cpu_seconds(p.pid) for p in (plain, web)}
            t0 = time.monotonic()
            time.sleep(seconds)
            elapsed = time.monotonic() - t0
            for name, proc in (("without [web]", plain), ("with [web], no visitor", web)):
                out[name] = {
                    "cpu_percent": 100 * (cpu_seconds(proc.pid) - begin[proc.pid]) / elapsed,
                    "rss_mb": memory(proc.pid)["VmRSS"],
                }
            # an overview tab left open: /live every 2 s
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as tab:
                tab.get("/")
                begin_web = cpu_seconds(web.pid)
                t0 = time.monotonic()
                while time.monotonic() - t0 < seconds:
                    tab.get("/live?view=overview")
                    time.sleep(2)
                elapsed = time.monotonic() - t0
            out["with [web], an overview tab open"] = {
                "cpu_percent": 100 * (cpu_seconds(web.pid) - begin_web) / elapsed,
                "rss_mb": memory(web.pid)["VmRSS"],
            }
        finally:
            stop(plain)
            stop(web)
    return out


def pages(base_url: str, rows: int, runs: int) -> dict[str, float]:
    """Median milliseconds of each page over a store of ``rows`` jobs."""
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = fill(root, rows)
        port = free_port()
        config.write_text(config_text(base_url, port).replace('after = "keep"\n', ""))
        conn = sqlite3.connect(root / "state" / DB_NAME)
        with conn:  # 1 % failed, for the filtered listing
            conn.execute("UPDATE jobs SET state = 'failed', error = 'bench' WHERE id % 100 = 0")
        conn.close()
        proc = start(config)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, timeout=120)
            middle = rows // 2
            targets = {
                "jobs page, newest 50": "/jobs",
                f"jobs page, 50 before #{middle}": f"/jobs?before={middle}",
                "jobs page, failed only": "/jobs?state=failed",
                "overview": "/",
                f"job #{middle}": f"/jobs/{middle}",
                "/metrics": "/metrics",
                "/healthz": "/healthz",
            }
            with httpx.Client(base_url=url, timeout=30) as client:
                client.get("/")  # the session cookie
                for name, path in targets.items():
                    samples = []
                    for _ in range(runs):
                        t0 = time.perf_counter()
                        answer = client.get(path)
                        samples.append(time.perf_counter() - t0)
                        assert answer.status_code == 200, (path, answer.status_code)
                    timings[name] = 1000 * statistics.median(samples)
        finally:
            stop(proc)
    return timings


def screenshot(base_url: str, path: Path, root: Path) -> None:
    """A demo daemon (a done, a processing, a failed and a held job) and its overview. The
    emulator processes for 20 s per second of audio: the short take finishes, the long
    one is still at Cleanvoice when the picture is taken."""
    from playwright.sync_api import sync_playwright

    from tests.conftest import make_wav

    port = free_port()
    for name in ("inbox", "outbox", "state"):
        shutil.rmtree(root / name, ignore_errors=True)
    config = prepare(root, base_url, port)
    # what the inbox holds at the first start waits for a person: a held job to show
    config.write_text(
        config.read_text().replace('after = "keep"', 'after = "move"\nexisting = "hold"')
    )
    make_wav(root / "inbox" / "episode-40-from-the-archive.wav", seconds=1)
    proc = start(config)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url)
        make_wav(root / "inbox" / "episode-41.wav", seconds=0.2)
        deadline = time.monotonic() + 60
        while 'cvsyncd_jobs{state="done"} 1.0' not in httpx.get(f"{url}/metrics").text:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        make_wav(root / "inbox" / "episode-42.wav", seconds=30)
        (root / "inbox" / "notes.wav").write_bytes(b"not a recording" * 20)
        time.sleep(8)
        chromium = shutil.which("chromium") or "chromium"
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
        args += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=args)
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(url)
            time.sleep(3)  # the credit, asked for at the first visit, and a live refresh
            page.goto(url)
            page.screenshot(path=str(path), full_page=True)
            browser.close()
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--idle-seconds", type=float, default=120.0)
    parser.add_argument("--no-idle", action="store_true")
    parser.add_argument("--no-pages", action="store_true")
    parser.add_argument("--screenshot", type=Path, help="save a demo overview there, and stop")
    parser.add_argument("--demo-root", type=Path, help="where the demo's folders are made")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        emulator = Emulator(
            Path(tmp) / "emulator",
            api_key=KEY,
            processing_seconds=2.0 if not args.screenshot else 1.0,
            processing_ratio=0.0 if not args.screenshot else 20.0,
        )
        emulator.start()
        try:
            if args.screenshot:
                root = args.demo_root or Path(tmp) / "demo"
                root.mkdir(parents=True, exist_ok=True)
                screenshot(emulator.base_url, args.screenshot.resolve(), root)
                print(f"saved {args.screenshot}")
                return
            print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
            print("load average before:", " ".join(Path("/proc/loadavg").read_text().split()[:3]))
            if not args.no_idle:
                print(f"\nIdle daemon, empty inbox, CPU over {args.idle_seconds:.0f} s:")
                for name, figures in idle(emulator.base_url, args.idle_seconds).items():
                    print(
                        f"  {name:34} CPU {figures['cpu_percent']:.3f} % of a core, "
                        f"RSS {figures['rss_mb']:.1f} MB"
                    )
            if not args.no_pages:
                print(f"\nPages over {args.rows:,} jobs, median of {args.runs} requests:")
                for name, ms in pages(emulator.base_url, args.rows, args.runs).items():
                    print(f"  {name:34} {ms:7.1f} ms")
            print("load average after:", " ".join(Path("/proc/loadavg").read_text().split()[:3]))
        finally:
            emulator.stop()


if __name__ == "__main__":
    main()
