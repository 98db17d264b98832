"""Transfer benchmark: cvsyncd's HTTP client against curl, and the daemon's memory.

Run from a checkout, in its virtual environment::

    python bench/transfer.py [--quick] [--repeat N] [--keep] [--dir DIR]

In one run, on 127.0.0.1 only, it measures

1. upload throughput: ``CleanvoiceClient.upload_file`` against ``curl -T``, both to the
   emulator's signed storage PUT and to a plain local sink that discards what it reads;
2. download throughput: ``CleanvoiceClient.download`` into a file against ``curl -o``, from
   the emulator's signed result URL (got through a real upload → create-edit → poll flow)
   and from a plain local file server;
3. memory: the peak RSS (VmHWM) of ``python -m cvsyncd run`` moving a 1 GiB file end to end
   against moving a 64 MiB file, each in a fresh daemon;
4. CPU seconds per GiB of each transfer (getrusage deltas; the daemon's /proc utime+stime).

The servers run in child processes so that they share no interpreter (and no GIL) with the
client being measured. Each throughput figure is taken ``--repeat`` times, the two clients
alternating; the tables show the best and the median. Only figures from the same run should
be compared: the absolute numbers move with whatever else the machine is doing.

``--quick`` leaves out the 1 GiB file (the memory comparison then cannot run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any

MiB = 1024**2
GiB = 1024**3
MB = 1000**2
API_KEY = "cv-bench-key-0123456789"
SINK_BUFFER = 4 * MiB  # recv_into buffer of the local sink
CHILD_START_TIMEOUT = 30.0
FLOW_TIMEOUT = 120.0  # upload → create-edit → SUCCESS on the emulator
TARGETS = {"upload": 0.9, "download": 0.8, "memory_mb": 20.0}


# -- the machine ------------------------------------------------------------------------


def machine_facts(curl: str | None) -> list[tuple[str, str]]:
    """Return (name, value) pairs describing this machine and the software measured."""
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    memory = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        memory = f"{kib / 1024**2:.1f} GiB"
    versions = ", ".join(
        f"{name} {_version(name)}" for name in ("cvsyncd", "httpx", "httpcore", "h11", "anyio")
    )
    curl_version = "absent (curl columns skipped)"
    if curl:
        out = subprocess.run([curl, "--version"], capture_output=True, text=True, timeout=10)
        curl_version = out.stdout.split("\n", 1)[0].split(" (", 1)[0]
    return [
        ("CPU", f"{os.cpu_count()} logical CPUs ({usable} usable), {cpu_model}"),
        ("memory", memory),
        ("OS", f"{platform.system()} {platform.release()} {platform.machine()}"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("packages", versions),
        ("curl", curl_version),
    ]


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


# -- inputs -----------------------------------------------------------------------------


def make_recording(path: Path, size: int) -> Path:
    """Write a ``size``-byte PCM WAV file (48 kHz stereo header, random samples).

    A real header lets the emulator and the daemon treat it as a recording; random data
    keeps anything on the way from compressing it.
    """
    rate, channels, width = 48000, 2, 2
    data = size - 44
    header = b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * channels * width,
                                    channels * width, width * 8)
    header += b"data" + struct.pack("<I", data)
    block = os.urandom(8 * MiB)
    with open(path, "wb") as f:
        f.write(header)
        left = data
        while left > 0:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
            block = block[4093:] + block[:4093]  # no two blocks alike
    return path


# -- child processes --------------------------------------------------------------------


def _watch_parent() -> None:
    """Exit this child process when its stdin closes (the benchmark ended or died)."""

    def wait() -> None:
        sys.stdin.buffer.read()
        os._exit(0)

    threading.Thread(target=wait, daemon=True).start()


def serve_sink(directory: Path) -> None:
    """Child process: a fast HTTP/1.1 server on a free loopback port.

    ``PUT /sink/...`` reads the body with large ``recv_into`` buffers and drops it;
    ``GET /files/NAME`` sends ``directory/NAME`` with ``sendfile``. Keep-alive, exact
    ``Content-Length`` answers, ``Expect: 100-continue`` honoured (curl sends it).
    Prints the port on stdout, then serves until stdin closes.
    """
    _watch_parent()
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    print(listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_sink_connection, args=(conn, directory), daemon=True).start()


def _sink_connection(conn: socket.socket, directory: Path) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = bytearray(SINK_BUFFER)
    view = memoryview(buffer)
    pending = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in pending:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                pending += chunk
            head, _, pending = pending.partition(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            method, target, _ = request_line.split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
            if method == "PUT" and "content-length" in headers:
                if headers.get("expect", "").lower() == "100-continue":
                    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                left = int(headers["content-length"]) - len(pending)
                pending = b""
                while left > 0:
                    n = conn.recv_into(view, min(left, SINK_BUFFER))
                    if not n:
                        return
                    left -= n
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            elif method == "GET" and target.startswith("/files/"):
                path = directory / target.removeprefix("/files/")
                size = path.stat().st_size
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                    + f"Content-Length: {size}\r\n\r\n".encode()
                )
                with path.open("rb") as source:
                    sent = 0
                    while sent < size:
                        sent += os.sendfile(conn.fileno(), source.fileno(), sent, size - sent)
            else:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                return


def serve_emulator(data_dir: Path) -> None:
    """Child process: the cvsyncd emulator on a free port, fast processing, no limits."""
    from cvsyncd.emulator import Emulator

    _watch_parent()
    emulator = Emulator(
        data_dir, api_key=API_KEY, processing_seconds=1.0, rate_limits=False, credits=1e6
    )
    emulator.start()
    print(emulator.port, flush=True)
    threading.Event().wait()


class Child:
    """A server of this script running as ``python bench/transfer.py --serve-… DIR``."""

    def __init__(self, role: str, directory: Path):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, f"--serve-{role}", str(directory)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready = select_line(self.proc.stdout, CHILD_START_TIMEOUT)
        if not ready.strip().isdigit():
            self.stop()
            raise RuntimeError(f"the {role} server did not start")
        self.port = int(ready)

    def stop(self) -> None:
        if self.proc.stdin:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()  # the child exits when its stdin closes
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


def select_line(stream: IO[str], timeout: float) -> str:
    """Read one line from a pipe, or return "" after ``timeout`` seconds."""
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        if not sel.select(timeout):
            return ""
    return stream.readline()


# -- one transfer -----------------------------------------------------------------------


@dataclass
class Sample:
    seconds: float
    cpu: float  # user + system seconds of the client
    size: int

    @property
    def mb_per_s(self) -> float:
        return self.size / self.seconds / MB


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def transfer_timeout(size: int) -> float:
    return 30.0 + size / (10 * MB)


def ours_upload(url: str, path: Path, size: int, expect_sha256: str) -> Sample:
    from cvsyncd.api import CleanvoiceClient

    async def run() -> Sample:
        async with CleanvoiceClient("http://127.0.0.1:9/v2", API_KEY) as client:
            cpu, start = _cpu(resource.RUSAGE_SELF), time.perf_counter()
            digest = await asyncio.wait_for(
                client.upload_file(url, path, size), transfer_timeout(size)
            )
            seconds = time.perf_counter() - start
            cpu = _cpu(resource.RUSAGE_SELF) - cpu
        if digest != expect_sha256:
            raise RuntimeError("upload_file returned the wrong SHA-256")
        return Sample(seconds, cpu, size)

    return asyncio.run(run())


def ours_download(url: str, dest: Path, size: int) -> Sample:
    from cvsyncd.api import CleanvoiceClient

    async def run() -> Sample:
        async with CleanvoiceClient("http://127.0.0.1:9/v2", API_KEY) as client:
            with dest.open("wb") as sink:
                cpu, start = _cpu(resource.RUSAGE_SELF), time.perf_counter()
                got = await asyncio.wait_for(client.download(url, sink), transfer_timeout(size))
                seconds = time.perf_counter() - start
                cpu = _cpu(resource.RUSAGE_SELF) - cpu
        if got != size:
            raise RuntimeError(f"download got {got} bytes, expected {size}")
        return Sample(seconds, cpu, size)

    try:
        return asyncio.run(run())
    finally:
        dest.unlink(missing_ok=True)


def run_curl(curl: str, args: list[str], size: int) -> Sample:
    """Run curl once; time from its own ``time_total`` (no process start-up in it)."""
    cpu = _cpu(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [curl, "-sS", "--fail", "--noproxy", "*", "-w", "%{time_total} %{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=transfer_timeout(size),
    )
    cpu = _cpu(resource.RUSAGE_CHILDREN) - cpu
    if out.returncode != 0:
        raise RuntimeError(f"curl failed ({out.returncode}): {out.stderr.strip()}")
    seconds, code = out.stdout.split()[-2:]
    if not code.startswith("2"):
        raise RuntimeError(f"curl got HTTP {code}")
    return Sample(float(seconds), cpu, size)


def curl_upload(curl: str, url: str, path: Path, size: int) -> Sample:
    return run_curl(curl, ["-T", str(path), "-o", os.devnull, url], size)


def curl_download(curl: str, url: str, dest: Path, size: int) -> Sample:
    try:
        sample = run_curl(curl, ["-o", str(dest), url], size)
        if dest.stat().st_size != size:
            raise RuntimeError(f"curl wrote {dest.stat().st_size} bytes, expected {size}")
        return sample
    finally:
        dest.unlink(missing_ok=True)


# -- repeated comparisons ---------------------------------------------------------------


@dataclass
class Comparison:
    direction: str  # "upload" or "download"
    server: str
    size: int
    ours: list[Sample] = field(default_factory=list)
    curl: list[Sample] = field(default_factory=list)


def best(samples: list[Sample]) -> float:
    return max(s.mb_per_s for s in samples)


def median(samples: list[Sample]) -> float:
    return statistics.median(s.mb_per_s for s in samples)


def compare(
    comparison: Comparison,
    repeat: int,
    ours: Callable[[], Sample],
    theirs: Callable[[], Sample] | None,
) -> Comparison:
    """Run both clients ``repeat`` times, alternating which goes first."""
    for round_ in range(repeat):
        order = [("ours", ours), ("curl", theirs)]
        if round_ % 2:
            order.reverse()
        for name, run in order:
            if run is None:
                continue
            sample = run()
            getattr(comparison, name).append(sample)
            note(
                f"  {comparison.direction:8} {comparison.server:9} {human(comparison.size):>7} "
                f"{name:4} {sample.mb_per_s:8.0f} MB/s  {sample.cpu:6.2f} s CPU"
            )
    return comparison


# -- the emulator flow ------------------------------------------------------------------


async def emulator_result_url(base_url: str, path: Path, size: int) -> tuple[str, str]:
    """Upload ``path`` to the emulator, create an edit, poll to SUCCESS.

    Return (signed upload URL, download URL of the result).
    """
    from cvsyncd.api import CleanvoiceClient, file_url_of

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
                raise RuntimeError(f"the emulator edit failed: {status.message}")
            await asyncio.sleep(0.25)
    raise RuntimeError("the emulator edit did not finish in time")


# -- the daemon's memory ----------------------------------------------------------------


@dataclass
class DaemonRun:
    size: int
    seconds: float  # from dropping the file to the "done" event
    idle_hwm: int  # VmHWM in bytes before the file was dropped
    peak_hwm: int  # VmHWM in bytes at "done"
    cpu: float  # utime + stime between the drop and "done"


def proc_status_bytes(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/{pid}/status")


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def write_daemon_setup(root: Path, base_url: str) -> Path:
    """Make inbox, outbox, key file and config (``after = "keep"``); return the config."""
    for name in ("inbox", "outbox"):
        (root / name).mkdir(parents=True)
    key_file = root / "api_key"
    key_file.write_text(API_KEY + "\n")
    key_file.chmod(0o600)
    config = root / "cvsyncd.toml"
    config.write_text(
        f'[cleanvoice]\nbase_url = "{base_url}"\napi_key_file = "api_key"\n\n'
        '[daemon]\nstate_dir = "state"\nsettle_seconds = 0.5\npoll_initial_seconds = 0.5\n'
        "poll_min_seconds = 0.2\npoll_max_seconds = 1\n\n"
        "[presets.bench]\nfillers = true\n\n"
        '[[folders]]\ninbox = "inbox"\noutbox = "outbox"\npreset = "bench"\nafter = "keep"\n'
    )
    return config


class Daemon:
    """``python -m cvsyncd run -c CONFIG`` with its JSON log read line by line."""

    def __init__(self, root: Path, config: Path):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEANVOICE", "CVSYNCD"))}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cvsyncd", "run", "-c", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**env, "PYTHONUNBUFFERED": "1"},
            cwd=root,
        )
        self.events: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            with contextlib.suppress(json.JSONDecodeError):
                event = json.loads(line)
                if isinstance(event, dict):
                    self.events.append(event)

    def wait_for(self, event: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e.get("event") == event for e in self.events):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        tail = "".join(self.lines[-30:])
        raise RuntimeError(f"the daemon did not log {event!r} in time; its log ends:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        if self.proc.stdout:
            self.proc.stdout.close()


def measure_daemon(root: Path, base_url: str, recording: Path) -> DaemonRun:
    """Run a fresh daemon, drop ``recording`` into its inbox, wait for "done"."""
    config = write_daemon_setup(root, base_url)
    size = recording.stat().st_size
    daemon = Daemon(root, config)
    try:
        daemon.wait_for("watching", 60)
        pid = daemon.proc.pid
        idle_hwm = proc_status_bytes(pid, "VmHWM")
        cpu, start = proc_cpu_seconds(pid), time.perf_counter()
        os.link(recording, root / "inbox" / recording.name)  # appears whole, at once
        daemon.wait_for("done", 60 + size / (5 * MB))
        seconds = time.perf_counter() - start
        run = DaemonRun(
            size=size,
            seconds=seconds,
            idle_hwm=idle_hwm,
            peak_hwm=proc_status_bytes(pid, "VmHWM"),
            cpu=proc_cpu_seconds(pid) - cpu,
        )
    finally:
        daemon.stop()
    output = root / "outbox" / recording.name
    if not output.exists() or output.stat().st_size != size:
        raise RuntimeError(f"the daemon's output {output.name} is missing or the wrong size")
    return run


# -- report -----------------------------------------------------------------------------


def human(size: int) -> str:
    return f"{size // GiB} GiB" if size >= GiB else f"{size // MiB} MiB"


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def throughput_table(comparisons: list[Comparison], have_curl: bool) -> list[str]:
    rows = [
        "| direction | server | size | ours MB/s best (median) | curl MB/s best (median) "
        "| ratio best (median) | target |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in comparisons:
        ours = f"{best(c.ours):.0f} ({median(c.ours):.0f})"
        if have_curl and c.curl:
            curl = f"{best(c.curl):.0f} ({median(c.curl):.0f})"
            ratio_best, ratio_median = best(c.ours) / best(c.curl), median(c.ours) / median(c.curl)
            target = TARGETS[c.direction]
            ratio = f"{ratio_best:.2f} ({ratio_median:.2f})"
            goal = f"≥ {target} {verdict(ratio_best >= target)}"
        else:
            curl, ratio, goal = "—", "—", "—"
        rows.append(
            f"| {c.direction} | {c.server} | {human(c.size)} | {ours} | {curl} | {ratio} | {goal} |"
        )
    return rows


def cpu_table(comparisons: list[Comparison], have_curl: bool) -> list[str]:
    rows = [
        "| direction | server | size | ours CPU s/GiB | curl CPU s/GiB |",
        "| --- | --- | --- | --- | --- |",
    ]
    for c in comparisons:

        def per_gib(samples: list[Sample]) -> str:
            return f"{statistics.median(s.cpu for s in samples) / (c.size / GiB):.2f}"

        theirs = per_gib(c.curl) if have_curl and c.curl else "—"
        rows.append(
            f"| {c.direction} | {c.server} | {human(c.size)} | {per_gib(c.ours)} | {theirs} |"
        )
    return rows


def memory_table(runs: list[DaemonRun]) -> list[str]:
    rows = [
        "| file | drop → done | VmHWM idle | VmHWM peak | daemon CPU s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        rows.append(
            f"| {human(r.size)} | {r.seconds:.1f} s | {r.idle_hwm / MB:.1f} MB "
            f"| {r.peak_hwm / MB:.1f} MB | {r.cpu:.2f} |"
        )
    return rows


def report(
    facts: list[tuple[str, str]],
    comparisons: list[Comparison],
    runs: list[DaemonRun],
    have_curl: bool,
    command: str,
) -> str:
    lines = [f"command: {command}", ""]
    lines += [f"- {name}: {value}" for name, value in facts]
    lines += ["", "Throughput (MB = 10^6 bytes; best and median of the repeats):", ""]
    lines += throughput_table(comparisons, have_curl)
    lines += ["", "CPU seconds per GiB moved (median of the repeats):", ""]
    lines += cpu_table(comparisons, have_curl)
    if runs:
        lines += ["", "Daemon end to end (fresh `cvsyncd run` per file, after = keep):", ""]
        lines += memory_table(runs)
        small, large = runs[0], runs[-1]
        growth = (large.peak_hwm - small.peak_hwm) / MB
        ok = growth <= TARGETS["memory_mb"]
        lines += [
            "",
            f"peak RSS difference {human(large.size)} − {human(small.size)}: {growth:+.1f} MB "
            f"(target ≤ {TARGETS['memory_mb']:.0f} MB: {verdict(ok)})",
        ]
        extra_gib = (large.size - small.size) / GiB
        if extra_gib > 0:
            lines.append(
                "daemon CPU per extra GiB end to end (hash + upload + download + fsync): "
                f"{(large.cpu - small.cpu) / extra_gib:.2f} s"
            )
    return "\n".join(lines)


def command_line(args: argparse.Namespace) -> str:
    """Return the command that was run (without --dir, a path of this machine)."""
    words = ["python", "bench/transfer.py"]
    if args.quick:
        words.append("--quick")
    words += ["--repeat", str(args.repeat)]
    if args.keep:
        words.append("--keep")
    return " ".join(words)


# -- main -------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="leave out the 1 GiB file")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the temp directory")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to make the temp directory (not tmpfs)"
    )
    parser.add_argument("--serve-sink", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--serve-emulator", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so that the clean-up in ``finally`` blocks runs."""

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.serve_sink:
        serve_sink(args.serve_sink)
        return 0
    if args.serve_emulator:
        serve_emulator(args.serve_emulator)
        return 0
    for name in ("http_proxy", "https_proxy", "all_proxy"):  # everything here is loopback
        os.environ.pop(name, None)
        os.environ.pop(name.upper(), None)
    curl = shutil.which("curl")
    sizes = [64 * MiB] if args.quick else [64 * MiB, GiB]
    facts = machine_facts(curl)
    work = Path(tempfile.mkdtemp(prefix="cvsyncd-bench-", dir=args.dir))
    needed = sum(sizes) * 5
    if shutil.disk_usage(work).free < needed:
        shutil.rmtree(work)
        note(f"transfer.py: needs about {needed / GiB:.1f} GiB free in {work.parent}; use --dir")
        return 1
    children: list[Child] = []
    try:
        with terminate_on_sigterm():
            return run_benchmark(args, curl, sizes, facts, work, children)
    except KeyboardInterrupt:
        note("transfer.py: interrupted")
        return 130
    finally:
        for child in children:
            child.stop()
        if args.keep:
            note(f"transfer.py: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run_benchmark(
    args: argparse.Namespace,
    curl: str | None,
    sizes: list[int],
    facts: list[tuple[str, str]],
    work: Path,
    children: list[Child],
) -> int:
    import hashlib

    if not curl:
        note("transfer.py: curl not found; the curl columns are skipped")
    files = work / "files"
    files.mkdir()
    recordings = {}
    for size in sizes:
        note(f"making a {human(size)} recording …")
        path = make_recording(files / f"bench-{human(size).replace(' ', '')}.wav", size)
        with path.open("rb") as f:
            recordings[size] = (path, hashlib.file_digest(f, "sha256").hexdigest())
    sink = Child("sink", files)
    children.append(sink)
    emulator = Child("emulator", work / "emulator")
    children.append(emulator)
    base_url = f"http://127.0.0.1:{emulator.port}/v2"
    dest = work / "download.out"

    note("uploads and the emulator flow …")
    uploads, downloads = [], []
    result_urls = {}
    for size, (path, sha) in recordings.items():
        signed, result_urls[size] = asyncio.run(emulator_result_url(base_url, path, size))
        targets = [("plain", f"http://127.0.0.1:{sink.port}/sink/{path.name}"), ("emulator", signed)]
        for server, url in targets:
            comparison = Comparison("upload", server, size)
            uploads.append(
                compare(
                    comparison,
                    args.repeat,
                    lambda url=url, path=path, size=size, sha=sha: ours_upload(url, path, size, sha),
                    (lambda url=url, path=path, size=size: curl_upload(curl, url, path, size))
                    if curl
                    else None,
                )
            )
    note("downloads …")
    for size, (path, _) in recordings.items():
        sources = [
            ("plain", f"http://127.0.0.1:{sink.port}/files/{path.name}"),
            ("emulator", result_urls[size]),
        ]
        for server, url in sources:
            comparison = Comparison("download", server, size)
            downloads.append(
                compare(
                    comparison,
                    args.repeat,
                    lambda url=url, size=size: ours_download(url, dest, size),
                    (lambda url=url, size=size: curl_download(curl, url, dest, size))
                    if curl
                    else None,
                )
            )

    runs = []
    if len(sizes) > 1:
        note("the daemon end to end …")
        for size in sizes:
            run = measure_daemon(work / f"daemon-{size}", base_url, recordings[size][0])
            note(f"  daemon {human(size)}: VmHWM {run.peak_hwm / MB:.1f} MB, {run.seconds:.1f} s")
            runs.append(run)
    else:
        note("--quick: the daemon memory comparison needs the 1 GiB file; skipped")

    print(report(facts, uploads + downloads, runs, bool(curl), command_line(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
