"""Unit costs behind the soak's CPU per recording: one durable commit, one API call, and
the least one recording costs at those prices.

1. A commit to a WAL database on this disk, as the store makes them (an UPDATE in a
   ``BEGIN IMMEDIATE`` transaction), with ``synchronous = FULL`` (the store's setting) and
   ``NORMAL`` beside it: CPU (user, system) and wall time per commit.
2. One small JSON GET to a local server in another process, ``--concurrency`` at a time,
   through the daemon's own API connections (``cvsyncd.cleanvoice.calls``: ``http.client``
   in worker threads, connections kept and checked), httpx's async client (what the daemon
   used before, with the same 8 connections), httpx's sync client in a worker thread, and
   bare ``http.client`` in a worker thread with its connections kept (no checks, no cap):
   the client's CPU per request. The server's CPU is not
   counted (it runs in its own process).
3. A state change through the job store itself (``Store.transition``: its transaction,
   its history row, the summary trigger, the job read back), ``synchronous = FULL``.
4. The least one recording of ``bench/soak.py`` costs at these prices: its 12 state
   changes, each committed before or after a side effect, and its 4 API calls (upload URL,
   create, poll, delete), with nothing for the transfers, the files, watching, scheduling
   or logging: a floor under the soak's CPU per recording, to set beside its goal.

    python bench/costs.py [--commits 1000] [--requests 1000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cvsyncd.cleanvoice.calls import ApiConnections  # noqa: E402
from cvsyncd.jobs import InputFile, Store  # noqa: E402
from cvsyncd.jobs import JobState as S  # noqa: E402

API_LIMITS = httpx.Limits(max_connections=8, max_keepalive_connections=8)
# what one recording needs at least, in bench/soak.py: its state changes (each committed
# before or after a side effect) and its API calls (upload URL, create, poll, delete; the
# PUT and the download are transfers)
COMMITS = 12
CALLS = 4
SOAK_GOAL_MS = 10.0

ANSWER = json.dumps({"status": "SUCCESS", "result": {"edited": True}}).encode()


class Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)

    def log_message(self, *args: object) -> None:
        pass


def serve() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    print(server.server_address[1], flush=True)
    server.serve_forever()


def cpu_seconds() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def commits(count: int) -> float:
    """Print what a bare commit costs, each way; return the CPU ms of one with FULL."""
    full = 0.0
    for sync in ("FULL", "NORMAL"):
        with tempfile.TemporaryDirectory(prefix="cvsyncd-costs-", dir=REPO) as place:
            conn = sqlite3.connect(Path(place) / "c.db", isolation_level=None)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {sync}")
            conn.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, state TEXT, n INTEGER)")
            conn.execute("INSERT INTO jobs VALUES (1, 'queued', 0)")
            (user0, system0), wall0 = cpu_seconds(), time.perf_counter()
            for i in range(count):
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("UPDATE jobs SET n = ? WHERE id = 1", (i,))
                conn.execute("COMMIT")
            (user1, system1), wall1 = cpu_seconds(), time.perf_counter()
            conn.close()
        user, system = (user1 - user0) / count * 1e3, (system1 - system0) / count * 1e3
        full = full or user + system
        print(
            f"commit, synchronous = {sync:6s}: CPU {user + system:.3f} ms (user {user:.3f}, "
            f"system {system:.3f}), wall {(wall1 - wall0) / count * 1e3:.3f} ms"
        )
    return full


def state_changes(count: int) -> float:
    """Print and return the CPU ms of one state change through the job store itself (its
    transaction, history row, summary trigger and the job read back)."""
    with tempfile.TemporaryDirectory(prefix="cvsyncd-costs-", dir=REPO) as place:
        store = Store.open(Path(place))
        job = store.create_job("inbox", "ep.wav", [InputFile("ep.wav", 1, 1, "f" * 64)], {})
        assert job is not None
        user0, system0 = cpu_seconds()
        for i in range(count):  # uploading and back: each one a transition as the steps make
            if i % 2:
                store.transition(job.id, S.UPLOADING, S.QUEUED, "redo", next_attempt_at=0)
            else:
                store.transition(job.id, S.QUEUED, S.UPLOADING, "uploading", facts={"n": i})
        user1, system1 = cpu_seconds()
        store.close()
    cpu = (user1 - user0 + system1 - system0) / count * 1e3
    print(f"state change through the store (synchronous = FULL): CPU {cpu:.3f} ms")
    return cpu


async def timed(
    name: str, one: Callable[[], Awaitable[None]], count: int, concurrency: int
) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def gated() -> None:
        async with gate:
            await one()

    await asyncio.gather(*(gated() for _ in range(min(50, count))))  # connections made
    (user0, system0), wall0 = cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(gated() for _ in range(count)))
    (user1, system1), wall1 = cpu_seconds(), time.perf_counter()
    cpu = (user1 - user0 + system1 - system0) / count * 1e3
    print(f"API call, {name:32s}: client CPU {cpu:.3f} ms a request (wall {wall1 - wall0:.1f} s)")
    return cpu


async def calls(url: str, count: int, concurrency: int) -> float:
    """Print what a small API call costs each client; return ours, in CPU ms."""
    connections = ApiConnections({"Accept": "application/json"})

    async def ours() -> None:
        json.loads((await connections.request("GET", url, max_bytes=2**25)).body)

    own = await timed("cvsyncd's API connections", ours, count, concurrency)
    connections.close()

    async with httpx.AsyncClient(limits=API_LIMITS) as client:

        async def async_one() -> None:
            async with client.stream("GET", url) as response:
                json.loads(b"".join([chunk async for chunk in response.aiter_bytes()]))

        await timed("httpx AsyncClient (cvsyncd's before)", async_one, count, concurrency)

    with httpx.Client(limits=API_LIMITS) as sync_client:

        def sync_one() -> None:
            with sync_client.stream("GET", url) as response:
                json.loads(b"".join(response.iter_bytes()))

        async def threaded_sync() -> None:
            await asyncio.to_thread(sync_one)

        await timed("httpx Client in a thread", threaded_sync, count, concurrency)

    parts = urlsplit(url)
    idle: list[http.client.HTTPConnection] = []

    def stdlib_one() -> None:
        conn = idle.pop() if idle else http.client.HTTPConnection(parts.hostname or "", parts.port)
        conn.request("GET", parts.path)
        json.loads(conn.getresponse().read())
        idle.append(conn)

    async def threaded_stdlib() -> None:
        await asyncio.to_thread(stdlib_one)

    await timed("http.client in a thread", threaded_stdlib, count, concurrency)
    for conn in idle:
        conn.close()
    return own


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return 0
    print(f"machine: {os.cpu_count()} CPUs; load average before: {os.getloadavg()}")
    commit = commits(args.commits)
    change = state_changes(args.commits)
    with subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True
    ) as server:
        assert server.stdout is not None
        try:
            port = int(server.stdout.readline())
            url = f"http://127.0.0.1:{port}/v2/edits/abc"
            call = asyncio.run(calls(url, args.requests, args.concurrency))
        finally:
            server.terminate()
    floor = COMMITS * commit + CALLS * call
    print(
        f"the durable minimum of one recording at these costs: {COMMITS} bare commits "
        f"({COMMITS} x {commit:.3f}) + {CALLS} API calls ({CALLS} x {call:.3f}) = {floor:.2f} ms "
        f"of CPU ({COMMITS * change + CALLS * call:.2f} ms with the store's state changes), "
        "before any transfer, file, watching or scheduling; the soak's goal is "
        f"{SOAK_GOAL_MS:g} ms a recording"
    )
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
