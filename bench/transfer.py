"""Transfer benchmark: cvsyncd's HTTP client against curl, and the daemon's peak memory.

    python bench/transfer.py [--quick] [--repeat N] [--keep] [--dir DIR]

In one run, on 127.0.0.1 only, with a 64 MiB and a 1 GiB recording (``--quick``: 64 MiB
only), it measures

1. uploads: ``CleanvoiceClient.upload_file`` against ``curl -T`` to the same URL, on the
   emulator's signed storage PUT and on a plain sink that reads with large ``recv_into``
   buffers and drops the bytes (so that the server is not the bottleneck);
2. downloads: ``CleanvoiceClient.download`` into a file against ``curl -o``, from the
   emulator's signed result URL (got through a real upload → create-edit → poll flow) and
   from the same plain server, which sends files with ``sendfile``;
3. memory: the peak RSS (VmHWM) of ``python -m cvsyncd run`` moving the 1 GiB file end to
   end (inbox → emulator → outbox, ``after = "keep"``) against moving the 64 MiB one, each
   in a fresh daemon;
4. CPU: user + system seconds per GiB of every transfer (``getrusage`` of this process for
   ours, of the reaped curl for curl, ``/proc/PID/stat`` for the daemon).

The servers run in child processes, so they share no interpreter (no GIL) with the client
measured; the children exit when this script ends, however it ends. Each figure is taken
``--repeat`` times, the two clients alternating, after ``sync`` so that the writeback of
one run does not land in the next. Compare the ratios of one run: the absolute figures
move with whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import json
import os
import platform
import resource
import selectors
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # measure this checkout, whatever else is installed

T = TypeVar("T")
MiB, GiB, MB = 1024**2, 1024**3, 1000**2
API_KEY = "cv-bench-key-0123456789"
SINK_BUFFER = 4 * MiB
START_TIMEOUT = 30.0  # for a child server to print its port, for the daemon to start
FLOW_TIMEOUT = 120.0  # upload → create-edit → SUCCESS on the emulator
TARGETS = {"upload": 0.9, "download": 0.8}  # our MB/s over curl's, at least
MEMORY_TARGET_MB = 20.0  # peak RSS with 1 GiB minus with 64 MiB, at most


def transfer_timeout(size: int) -> float:
    return 30.0 + size / (10 * MB)


# -- the machine ------------------------------------------------------------------------


def machine_facts(curl: str | None) -> list[tuple[str, str]]:
    """Return (name, value) pairs describing this machine and the software measured."""
    cpuinfo = _read("/proc/cpuinfo")
    model = next(
        (ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), "?"
    )
    meminfo = next((ln.split()[1] for ln in _read("/proc/meminfo") if ln.startswith("MemTotal")), 0)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    packages = ", ".join(f"{n} {_version(n)}" for n in ("httpx", "httpcore", "h11", "anyio"))
    curl_version = "absent: curl columns skipped"
    if curl:
        out = subprocess.run([curl, "--version"], capture_output=True, text=True, timeout=10)
        curl_version = out.stdout.split(" (", 1)[0]
    return [
        ("CPU", f"{os.cpu_count()} logical CPUs ({usable} usable), {model}"),
        ("memory", f"{int(meminfo) / 1024**2:.1f} GiB"),
        ("OS", f"{platform.system()} {platform.release()} {platform.machine()}"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("packages", packages),
        ("cvsyncd", f"{_version('cvsyncd')}, checkout {revision()}"),
        ("curl", curl_version),
        (
            "SHA-256",
            f"{sha256_speed():.0f} MB/s on one core (the fingerprint when a file is found)",
        ),
    ]


def _read(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def sha256_speed() -> float:
    """Return this machine's SHA-256 speed over data in memory, in MB/s."""
    block, rounds = os.urandom(MiB), 256
    hasher, start = hashlib.sha256(), time.perf_counter()
    for _ in range(rounds):
        hasher.update(block)
    return rounds * MiB / (time.perf_counter() - start) / MB


def revision() -> str:
    """Return the checkout's commit, with "+ local changes" when the tree is dirty."""
    git = shutil.which("git")
    if git is None:
        return "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        args = [git, "-C", str(REPO), "describe", "--always", "--dirty= + local changes"]
        out = subprocess.run(args, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    return "unknown"


# -- inputs -----------------------------------------------------------------------------


def make_recording(path: Path, size: int) -> Path:
    """Write a ``size``-byte PCM WAV file (a 48 kHz stereo header, random samples).

    The header makes it a recording for the emulator and the daemon; the random data
    leaves nothing on the way anything to compress.
    """
    rate, channels, width = 48000, 2, 2
    data = size - 44
    header = b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE" + b"fmt "
    header += struct.pack(
        "<IHHIIHH", 16, 1, channels, rate, rate * channels * width, channels * width, width * 8
    )
    header += b"data" + struct.pack("<I", data)
    block = os.urandom(8 * MiB)
    with open(path, "wb") as f:
        f.write(header)
        for offset in range(0, data, len(block)):
            f.write(block[: data - offset])
            block = block[4093:] + block[:4093]  # no two blocks alike
    return path


# -- the servers, each in a child process -----------------------------------------------


def exit_with_parent() -> None:
    """Exit this child process when its stdin closes: the benchmark ended or died."""

    def wait() -> None:
        sys.stdin.buffer.read()
        os._exit(0)

    threading.Thread(target=wait, daemon=True).start()


def serve_plain(directory: Path) -> None:
    """Serve HTTP/1.1 on a free loopback port as fast as Python can; print the port.

    ``PUT /sink/…`` reads the body with large ``recv_into`` buffers and drops it;
    ``GET /files/NAME`` sends ``directory/NAME`` with ``sendfile``. Keep-alive, exact
    ``Content-Length`` answers, and ``Expect: 100-continue`` honoured (curl sends it).
    """
    exit_with_parent()
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    print(listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=plain_connection, args=(conn, directory), daemon=True).start()


def plain_connection(conn: socket.socket, directory: Path) -> None:
    view = memoryview(bytearray(SINK_BUFFER))
    pending = b""
    with conn, contextlib.suppress(OSError):  # a client that goes away ends its connection
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            while b"\r\n\r\n" not in pending:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                pending += chunk
            head, _, pending = pending.partition(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            method, target, _ = request_line.split(" ", 2)
            headers = {
                k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)
            }
            if method == "PUT" and "content-length" in headers:
                if headers.get("expect", "").lower() == "100-continue":
                    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                left, pending = int(headers["content-length"]) - len(pending), b""
                while left > 0:
                    n = conn.recv_into(view, min(left, SINK_BUFFER))
                    if not n:
                        return
                    left -= n
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            elif method == "GET" and target.startswith("/files/"):
                path = directory / target.removeprefix("/files/")
                size = path.stat().st_size
                conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
                with path.open("rb") as source:
                    sent = 0
                    while sent < size:
                        sent += os.sendfile(conn.fileno(), source.fileno(), sent, size - sent)
            else:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                return


def serve_emulator(data_dir: Path) -> None:
    """Serve the emulator on a free port, one second per edit, no limits; print the port."""
    from cvsyncd.emulator import Emulator

    exit_with_parent()
    emulator = Emulator(
        data_dir, api_key=API_KEY, processing_seconds=1.0, rate_limits=False, credits=1e6
    )
    emulator.start()
    print(emulator.port, flush=True)
    threading.Event().wait()


def child_env() -> dict[str, str]:
    """The environment of child processes: this checkout first on the import path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEANVOICE", "CVSYNCD"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


class Server:
    """``python bench/transfer.py --serve-ROLE DIR``, and the port it listens on."""

    def __init__(self, role: str, directory: Path):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, f"--serve-{role}", str(directory)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            line = self.proc.stdout.readline() if selector.select(START_TIMEOUT) else ""
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"the {role} server did not start")
        self.port = int(line)

    def stop(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()  # the child exits when its stdin closes
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- one transfer -----------------------------------------------------------------------


@dataclass
class Sample:
    seconds: float
    cpu: float  # user + system seconds of the client

    def mb_per_s(self, size: int) -> float:
        return size / self.seconds / MB


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


async def timed(work: Awaitable[T], size: int) -> tuple[T, Sample]:
    """Await ``work`` (a transfer of ``size`` bytes); return its result and its figures."""
    cpu, start = cpu_seconds(resource.RUSAGE_SELF), time.perf_counter()
    result = await asyncio.wait_for(work, transfer_timeout(size))
    return result, Sample(time.perf_counter() - start, cpu_seconds(resource.RUSAGE_SELF) - cpu)


def ours_upload(url: str, path: Path, size: int, sha256: str) -> Sample:
    from cvsyncd.cleanvoice.client import CleanvoiceClient

    async def run() -> Sample:
        async with CleanvoiceClient("http://127.0.0.1:9/v2", API_KEY) as client:
            # as the daemon calls it: no hashing on the way (the file's stat is compared
            # before and after instead; its fingerprint was taken when it was found)
            _digest, sample = await timed(client.upload_file(url, path, size), size)
        return sample

    return asyncio.run(run())


def ours_download(url: str, dest: Path, size: int) -> Sample:
    from cvsyncd.cleanvoice.client import CleanvoiceClient

    async def run() -> Sample:
        async with CleanvoiceClient("http://127.0.0.1:9/v2", API_KEY) as client:
            with dest.open("wb") as sink:
                return (await timed(client.download(url, sink), size))[1]

    try:
        sample = asyncio.run(run())
        if dest.stat().st_size != size:
            raise RuntimeError(f"download wrote {dest.stat().st_size} bytes, not {size}")
        return sample
    finally:
        dest.unlink(missing_ok=True)


def curl_upload(curl: str, url: str, path: Path, size: int) -> Sample:
    return run_curl(curl, ["-T", str(path), "-o", os.devnull, url], size)


def curl_download(curl: str, url: str, dest: Path, size: int) -> Sample:
    try:
        sample = run_curl(curl, ["-o", str(dest), url], size)
        if dest.stat().st_size != size:
            raise RuntimeError(f"curl wrote {dest.stat().st_size} bytes, not {size}")
        return sample
    finally:
        dest.unlink(missing_ok=True)


def run_curl(curl: str, args: list[str], size: int) -> Sample:
    """Run curl once; time it by its own ``time_total``, which leaves out its start-up."""
    cpu = cpu_seconds(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [curl, "-sS", "--fail", "--noproxy", "*", "-w", "%{time_total}", *args],
        capture_output=True,
        text=True,
        timeout=transfer_timeout(size),
    )
    if out.returncode != 0:
        raise RuntimeError(f"curl failed ({out.returncode}): {out.stderr.strip()}")
    return Sample(float(out.stdout.split()[-1]), cpu_seconds(resource.RUSAGE_CHILDREN) - cpu)


# -- a comparison -----------------------------------------------------------------------


@dataclass
class Comparison:
    direction: str  # "upload" or "download"
    server: str  # "plain" or "emulator"
    size: int
    ours: list[Sample] = field(default_factory=list)
    curl: list[Sample] = field(default_factory=list)

    def samples(self, who: str) -> list[Sample]:
        return self.ours if who == "ours" else self.curl

    def best(self, who: str) -> float:
        return max(s.mb_per_s(self.size) for s in self.samples(who))

    def median(self, who: str) -> float:
        return statistics.median(s.mb_per_s(self.size) for s in self.samples(who))

    def cpu_per_gib(self, who: str) -> float:
        return statistics.median(s.cpu for s in self.samples(who)) / (self.size / GiB)


def compare(
    comparison: Comparison,
    repeat: int,
    ours: Callable[[], Sample],
    curl: Callable[[], Sample] | None,
) -> Comparison:
    """Take both clients' figures ``repeat`` times, alternating which goes first."""
    arms = [("ours", ours)] + ([("curl", curl)] if curl else [])
    for round_ in range(repeat):
        for who, run in arms[:: -1 if round_ % 2 else 1]:
            os.sync()  # the previous run's dirty pages are written back now, not during this one
            sample = run()
            comparison.samples(who).append(sample)
            note(
                f"  {comparison.direction:8} {comparison.server:8} {human(comparison.size):>7} "
                f"{who:4} {sample.mb_per_s(comparison.size):6.0f} MB/s {sample.cpu:6.2f} s CPU"
            )
    return comparison


async def emulator_urls(base_url: str, path: Path, size: int) -> tuple[str, str]:
    """Upload ``path`` to the emulator, create an edit, poll it to SUCCESS.

    Return the signed upload URL and the signed download URL of the result.
    """
    from cvsyncd.cleanvoice.client import CleanvoiceClient, file_url_of

    async with CleanvoiceClient(base_url, API_KEY) as client:
        signed = await client.request_upload_url(path.name)
        await client.upload_file(signed, path, size)
        edit_id = await client.create_edit([file_url_of(signed)], {})
        deadline = time.monotonic() + FLOW_TIMEOUT
        while time.monotonic() < deadline:
            status = await client.get_edit(edit_id)
            if status.succeeded and status.result is not None:
                return signed, str(status.result["download_url"])
            if status.failed:
                raise RuntimeError(f"the emulator's edit failed: {status.message}")
            await asyncio.sleep(0.25)
    raise RuntimeError("the emulator's edit did not finish in time")


# -- the daemon -------------------------------------------------------------------------


@dataclass
class DaemonRun:
    size: int
    seconds: float  # from dropping the file to the "done" log event
    idle_hwm: int  # VmHWM in bytes before the drop
    peak_hwm: int  # VmHWM in bytes at "done"
    cpu: float  # user + system seconds from the drop to "done"


def vm_hwm(pid: int) -> int:
    line = next(ln for ln in _read(f"/proc/{pid}/status") if ln.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


class Daemon:
    """``python -m cvsyncd run`` in a fresh folder (inbox, outbox, key, config), its log read."""

    def __init__(self, root: Path, base_url: str):
        self.root = root
        for name in ("inbox", "outbox"):
            (root / name).mkdir(parents=True)
        (root / "api_key").write_text(API_KEY + "\n")
        (root / "api_key").chmod(0o600)
        # The emulator takes a second whatever the duration: poll as soon as allowed.
        (root / "cvsyncd.toml").write_text(
            f'[cleanvoice]\nbase_url = "{base_url}"\napi_key_file = "api_key"\n'
            "expected_processing_ratio = 0.0001\n\n"
            '[daemon]\nstate_dir = "state"\nsettle_seconds = 0.5\npoll_initial_seconds = 0.5\n'
            "poll_min_seconds = 0.2\npoll_max_seconds = 1\n\n[presets.bench]\nfillers = true\n\n"
            '[[folders]]\ninbox = "inbox"\noutbox = "outbox"\npreset = "bench"\nafter = "keep"\n'
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cvsyncd", "run", "-c", "cvsyncd.toml"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=root,
            env={**child_env(), "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self.events: set[str] = set()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            with contextlib.suppress(ValueError, TypeError, KeyError):
                self.events.add(json.loads(line)["event"])

    def wait_for(self, event: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while event not in self.events:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                tail = "".join(self.lines[-30:])
                raise RuntimeError(f"the daemon did not log {event!r}; its log ends:\n{tail}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)


def measure_daemon(root: Path, base_url: str, recording: Path) -> DaemonRun:
    """Start a fresh daemon, drop ``recording`` into its inbox, wait for "done"."""
    size = recording.stat().st_size
    daemon = Daemon(root, base_url)
    try:
        daemon.wait_for("watching", START_TIMEOUT)
        pid = daemon.proc.pid
        idle_hwm, cpu, start = vm_hwm(pid), process_cpu(pid), time.perf_counter()
        os.link(recording, root / "inbox" / recording.name)  # appears whole, at once
        daemon.wait_for("done", 60 + size / (5 * MB))
        run = DaemonRun(
            size, time.perf_counter() - start, idle_hwm, vm_hwm(pid), process_cpu(pid) - cpu
        )
    finally:
        daemon.stop()
    output = root / "outbox" / recording.name
    if not output.is_file() or output.stat().st_size != size:
        raise RuntimeError(f"the daemon's output {output.name} is missing or of the wrong size")
    return run


# -- the report -------------------------------------------------------------------------


def human(size: int) -> str:
    return f"{size // GiB} GiB" if size >= GiB else f"{size // MiB} MiB"


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(
    command: str, facts: list[tuple[str, str]], comparisons: list[Comparison], runs: list[DaemonRun]
) -> str:
    lines = [f"`{command}`", ""] + [f"- {name}: {value}" for name, value in facts]
    lines += [
        "",
        "Throughput, MB/s (10^6 bytes), best of the repeats (median); ratio = ours / curl:",
        "",
        "| direction | server | size | ours | curl | ratio | target |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in comparisons:
        row = [
            c.direction,
            c.server,
            human(c.size),
            f"{c.best('ours'):.0f} ({c.median('ours'):.0f})",
        ]
        if c.curl:
            ratio = c.best("ours") / c.best("curl")
            target = TARGETS[c.direction]
            row += [
                f"{c.best('curl'):.0f} ({c.median('curl'):.0f})",
                f"{ratio:.2f} ({c.median('ours') / c.median('curl'):.2f})",
                f"≥ {target}: {verdict(ratio >= target)}",
            ]
        else:
            row += ["—", "—", "—"]
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "CPU seconds per GiB moved (median of the repeats; curl's include its start-up):",
        "",
        "| direction | server | size | ours | curl |",
        "| --- | --- | --- | --- | --- |",
    ]
    for c in comparisons:
        theirs = f"{c.cpu_per_gib('curl'):.2f}" if c.curl else "—"
        lines.append(
            f"| {c.direction} | {c.server} | {human(c.size)} "
            f"| {c.cpu_per_gib('ours'):.2f} | {theirs} |"
        )
    if len(runs) == 2:
        small, large = runs
        growth = (large.peak_hwm - small.peak_hwm) / MB
        extra_gib = (large.size - small.size) / GiB
        lines += [
            "",
            'The daemon end to end (a fresh `cvsyncd run` per file, `after = "keep"`):',
            "",
            "| file | drop → done | VmHWM before the drop | VmHWM at done | CPU s |",
            "| --- | --- | --- | --- | --- |",
        ]
        for r in runs:
            lines.append(
                f"| {human(r.size)} | {r.seconds:.1f} s | {r.idle_hwm / MB:.1f} MB "
                f"| {r.peak_hwm / MB:.1f} MB | {r.cpu:.2f} |"
            )
        lines += [
            "",
            f"Peak RSS, {human(large.size)} minus {human(small.size)}: {growth:+.1f} MB "
            f"(target ≤ {MEMORY_TARGET_MB:.0f} MB: {verdict(growth <= MEMORY_TARGET_MB)}). "
            f"Daemon CPU per extra GiB (fingerprint, upload, download, fsync): "
            f"{(large.cpu - small.cpu) / extra_gib:.2f} s.",
        ]
    return "\n".join(lines)


# -- main -------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Transfer throughput and memory of cvsyncd against curl, on loopback."
    )
    parser.add_argument("--quick", action="store_true", help="64 MiB only, no daemon runs")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (default: 3)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--dir", type=Path, help="make the temporary directory here")
    parser.add_argument("--serve-plain", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--serve-emulator", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def command_line(args: argparse.Namespace) -> str:
    """The command as run, without ``--dir`` (a path of this machine)."""
    words = ["python bench/transfer.py"] + (["--quick"] if args.quick else [])
    return " ".join(words + ["--repeat", str(args.repeat)] + (["--keep"] if args.keep else []))


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit, so that the clean-up in ``finally`` blocks runs."""

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.serve_plain:
        serve_plain(args.serve_plain)  # until the benchmark ends
        return 0
    if args.serve_emulator:
        serve_emulator(args.serve_emulator)
        return 0
    for name in ("http_proxy", "https_proxy", "all_proxy"):  # everything here is loopback
        os.environ.pop(name, None)
        os.environ.pop(name.upper(), None)
    sizes = [64 * MiB] if args.quick else [64 * MiB, GiB]
    work = Path(tempfile.mkdtemp(prefix="cvsyncd-bench-", dir=args.dir))
    servers: list[Server] = []
    try:
        with sigterm_as_exit():
            needed = 5 * sum(sizes)
            if shutil.disk_usage(work).free < needed:
                note(f"transfer.py: needs {needed / GiB:.1f} GiB free where --dir points")
                return 1
            print(run(args, sizes, work, servers))
            return 0
    except KeyboardInterrupt:
        note("transfer.py: interrupted")
        return 130
    finally:
        for server in servers:
            server.stop()
        if args.keep:
            note(f"transfer.py: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, sizes: list[int], work: Path, servers: list[Server]) -> str:
    """Take every figure; return the report."""
    curl = shutil.which("curl")
    if curl is None:
        note("transfer.py: curl not found; the curl columns are skipped")
    facts = machine_facts(curl)
    files = work / "files"
    files.mkdir()
    recordings = {}
    for size in sizes:
        note(f"making a {human(size)} recording …")
        path = make_recording(files / f"bench-{size // MiB}MiB.wav", size)
        with path.open("rb") as f:
            recordings[size] = (path, hashlib.file_digest(f, "sha256").hexdigest())
    plain = Server("plain", files)
    servers.append(plain)
    emulator = Server("emulator", work / "emulator")
    servers.append(emulator)
    base_url = f"http://127.0.0.1:{emulator.port}/v2"
    dest = work / "download.out"

    comparisons = []
    for size, (path, sha256) in recordings.items():
        signed, result = asyncio.run(emulator_urls(base_url, path, size))
        plain_url = f"http://127.0.0.1:{plain.port}"
        for server, up, down in [
            ("plain", f"{plain_url}/sink/{path.name}", f"{plain_url}/files/{path.name}"),
            ("emulator", signed, result),
        ]:
            upload = Comparison("upload", server, size)
            ours = functools.partial(ours_upload, up, path, size, sha256)
            theirs = functools.partial(curl_upload, curl, up, path, size) if curl else None
            comparisons.append(compare(upload, args.repeat, ours, theirs))
            download = Comparison("download", server, size)
            ours = functools.partial(ours_download, down, dest, size)
            theirs = functools.partial(curl_download, curl, down, dest, size) if curl else None
            comparisons.append(compare(download, args.repeat, ours, theirs))
    comparisons.sort(key=lambda c: (c.direction != "upload", c.size, c.server != "plain"))

    runs = []
    if len(sizes) == 2:
        for size in sizes:
            note(f"the daemon, {human(size)} end to end …")
            runs.append(
                measure_daemon(work / f"daemon-{size // MiB}", base_url, recordings[size][0])
            )
    return report(command_line(args), facts, comparisons, runs)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
