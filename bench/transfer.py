"""Transfer benchmark: cvsyncd's transfer client against curl, and the daemon's peak memory.

    python bench/transfer.py [--quick] [--repeat N] [--load quiet,busy] [--keep] [--dir DIR]

In one run, side by side and on 127.0.0.1 only, with a 64 MiB and a 1 GiB recording
(``--quick``: 64 MiB only), it measures

1. uploads: ``Transfers.upload_file`` without hashing (as the daemon calls it) against
   ``curl -T`` to the same URL;
2. downloads: ``Transfers.download`` into a file against ``curl -o`` into a file on the
   same disk;
3. for each run of either client: its throughput (the transfer itself, start-up left out),
   its CPU (user + system seconds) and its minor page faults;
4. memory: the peak RSS (VmHWM) of ``python -m cvsyncd run`` moving the 1 GiB file end to
   end (inbox → emulator → outbox, ``after = "keep"``) against moving the 64 MiB one, each
   in a fresh daemon, and the daemon's CPU (``/proc/PID/stat``); not with ``--quick``.

The references:

- curl, one process per run, timed by its own ``%{time_total}`` (which leaves out its
  start-up); its CPU and page faults are the reaped process's (``getrusage`` of the
  children), start-up included: a few milliseconds and a few hundred faults.
- The emulator's signed storage (``cvsyncd.emulator``, in a child process): the PUT of a
  signed upload URL, and the GET of the signed result URL obtained through a real upload
  → create-edit → poll flow. It stands in for Cleanvoice's storage.
- A plain server written here (another child process) that reads a PUT's body with 4 MiB
  ``recv_into`` and drops it, and sends a GET's file with ``sendfile``: a server fast
  enough not to be what limits either client.

Fresh processes: every run of ours is a fresh ``python bench/transfer.py --client …``
process, which imports ``Transfers`` from this checkout, makes one transfer and prints its
figures: the seconds around the awaited call (comparable to curl's ``time_total``), the
CPU and minor page faults around the call, and those of the whole process (interpreter
start-up and imports included). So ours pays what a daemon that just started pays, as
curl does on every run.

Load (``--load``, both by default): "quiet" starts nothing; "busy" starts one more process
spinning on a CPU (``while True: pass``) before a comparison's runs and kills it after
(and on any exit of the benchmark), so that on a two-core machine the client, its server
and the rest share the other core. Every comparison (each direction, server and size) is
taken under each condition, and the load average is noted before the first measurement and
after the last: the runs are only as quiet as the machine.

Each comparison is ``--repeat`` runs of each client (5 by default), interleaved: the
client that goes first alternates from round to round, and each run follows ``sync``, so
that the writeback of one run does not land in the next. The report gives medians; the
best runs stand beside them in brackets, never alone; a ratio is ours' median MB/s over
curl's, with the ratio of the best runs in brackets. The goals (TARGETS, CPU_TARGETS) are
judged on the medians.

Why earlier figures could disagree with an independent run: ours used to be timed inside
this benchmark process, already warm (its allocator grown by the runs before, so it paid
none of the page faults a fresh process pays on its first buffers), and the ratios
reported were of the best run of each client. Now each run of ours is a fresh process and
the ratios are of medians.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import functools
import hashlib
import json
import logging
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
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # measure this checkout, whatever else is installed

MiB, GiB, MB = 1024**2, 1024**3, 1000**2
API_KEY = "cv-bench-key-0123456789"
SINK_BUFFER = 4 * MiB
START_TIMEOUT = 30.0  # for a child server to print its port, for the daemon to start
FLOW_TIMEOUT = 120.0  # upload → create-edit → SUCCESS on the emulator
TARGETS = {"upload": 0.95, "download": 1.0}  # median MB/s, ours over curl's, at least
CPU_TARGETS = {"download": 1.2}  # CPU seconds per GiB of ours (the call), median, at most
MEMORY_TARGET_MB = 20.0  # peak RSS with 1 GiB minus with 64 MiB, at most
LOADS = ("quiet", "busy")
SPIN = "while True: pass"  # the busy condition's extra process
SPIN_SETTLE = 0.5  # seconds for it to be spinning before the first run
DIRECTIONS = ("upload", "download")


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
    packages = ", ".join(f"{n} {_version(n)}" for n in ("httpx", "h11"))
    packages += " (the API calls; the transfers use the standard library's http.client)"
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


# -- the load ---------------------------------------------------------------------------


def load_average() -> str:
    """The machine's load average over 1, 5 and 15 minutes."""
    fields = next(iter(_read("/proc/loadavg")), "").split()[:3]
    if len(fields) < 3:
        fields = [f"{n:.2f}" for n in os.getloadavg()]
    return " ".join(fields) + " (1, 5, 15 min)"


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child killed when the benchmark dies, however it dies
    (Linux's PR_SET_PDEATHSIG); None elsewhere. libc is loaded here, before the fork."""
    if sys.platform != "linux":
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def set_signal() -> None:
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    return set_signal


@contextlib.contextmanager
def load_condition(load: str) -> Iterator[None]:
    """Nothing for "quiet"; for "busy", one more process spinning on a CPU meanwhile."""
    if load != "busy":
        yield
        return
    spinner = subprocess.Popen(
        [sys.executable, "-c", SPIN],
        stdin=subprocess.DEVNULL,
        preexec_fn=_parent_death_signal(),  # even a SIGKILL of the benchmark ends it
    )
    try:
        time.sleep(SPIN_SETTLE)
        if spinner.poll() is not None:
            raise RuntimeError("the busy process ended at once")
        yield
    finally:
        spinner.kill()
        spinner.wait()


# -- one transfer -----------------------------------------------------------------------


@dataclass
class Sample:
    seconds: float  # the transfer itself: around the call (ours), time_total (curl)
    cpu: float  # user + system seconds: around the call (ours), the whole process (curl)
    faults: int  # minor page faults, counted as the CPU is
    process_cpu: float  # of the whole process, start-up included (curl: as cpu)
    process_faults: int  # likewise

    def mb_per_s(self, size: int) -> float:
        return size / self.seconds / MB


def cpu_of(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def quiet_logs() -> None:
    """Log at the daemon's default level: the clients' debug events are dropped, not
    rendered (they would go to standard output, into the report)."""
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))


def client_main(mode: str, url: str, path: Path, size: int) -> int:
    """``--client``: one transfer by ``Transfers`` in this fresh process; print its figures
    as one JSON line."""
    from cvsyncd import __version__
    from cvsyncd.cleanvoice.transfers import Transfers

    quiet_logs()

    async def transfer() -> dict[str, float | int]:
        transfers = Transfers(f"cvsyncd/{__version__}")
        with contextlib.ExitStack() as stack:
            sink = stack.enter_context(path.open("wb")) if mode == "download" else None
            before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            if sink is None:
                # as the daemon calls it: no hashing on the way (the file's stat is compared
                # before and after instead; its fingerprint was taken when it was found)
                await transfers.upload_file(url, path, size)
                moved = size
            else:
                moved = await transfers.download(url, sink)
            seconds = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_SELF)
        await transfers.aclose()
        return {
            "bytes": moved,
            "seconds": seconds,
            "cpu": cpu_of(after) - cpu_of(before),
            "faults": after.ru_minflt - before.ru_minflt,
        }

    figures = asyncio.run(transfer())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    figures |= {"process_cpu": cpu_of(usage), "process_faults": usage.ru_minflt}
    print(json.dumps(figures), flush=True)
    return 0


def run_ours(mode: str, url: str, path: Path, size: int) -> Sample:
    """Run one transfer of ours in a fresh process (``--client``); return its figures."""
    out = subprocess.run(
        [sys.executable, __file__, "--client", mode, url, str(path), str(size)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=START_TIMEOUT + transfer_timeout(size),
    )
    if out.returncode != 0:
        tail = "\n".join(out.stderr.strip().splitlines()[-10:])
        raise RuntimeError(f"our {mode} failed ({out.returncode}):\n{tail}")
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    if figures["bytes"] != size:
        raise RuntimeError(f"our {mode} moved {figures['bytes']} bytes, not {size}")
    return Sample(
        seconds=float(figures["seconds"]),
        cpu=float(figures["cpu"]),
        faults=int(figures["faults"]),
        process_cpu=float(figures["process_cpu"]),
        process_faults=int(figures["process_faults"]),
    )


def ours_upload(url: str, path: Path, size: int) -> Sample:
    return run_ours("upload", url, path, size)


def ours_download(url: str, dest: Path, size: int) -> Sample:
    try:
        sample = run_ours("download", url, dest, size)
        if dest.stat().st_size != size:
            raise RuntimeError(f"our download wrote {dest.stat().st_size} bytes, not {size}")
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
    """Run curl once; time it by its own ``time_total``, which leaves out its start-up.

    Its CPU and page faults are those of the whole reaped process, start-up included.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [curl, "-sS", "--fail", "--noproxy", "*", "-w", "%{time_total}", *args],
        capture_output=True,
        text=True,
        timeout=transfer_timeout(size),
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"curl failed ({out.returncode}): {out.stderr.strip()}")
    cpu, faults = cpu_of(after) - cpu_of(before), after.ru_minflt - before.ru_minflt
    return Sample(float(out.stdout.split()[-1]), cpu, faults, cpu, faults)


# -- a comparison -----------------------------------------------------------------------


@dataclass
class Comparison:
    direction: str  # "upload" or "download"
    server: str  # "plain" or "emulator"
    size: int
    load: str  # "quiet" or "busy"
    ours: list[Sample] = field(default_factory=list)
    curl: list[Sample] = field(default_factory=list)

    def samples(self, who: str) -> list[Sample]:
        return self.ours if who == "ours" else self.curl

    def best(self, who: str) -> float:
        return max(s.mb_per_s(self.size) for s in self.samples(who))

    def median(self, who: str) -> float:
        return statistics.median(s.mb_per_s(self.size) for s in self.samples(who))

    def per_gib(self, who: str, figure: Callable[[Sample], float]) -> float:
        """The median of ``figure`` over the runs, per GiB moved."""
        return statistics.median(figure(s) for s in self.samples(who)) / (self.size / GiB)


def compare(
    comparison: Comparison,
    repeat: int,
    ours: Callable[[], Sample],
    curl: Callable[[], Sample] | None,
) -> Comparison:
    """Take both clients' figures ``repeat`` times, alternating which goes first."""
    arms = [("ours", ours)] + ([("curl", curl)] if curl else [])
    with load_condition(comparison.load):
        for round_ in range(repeat):
            for who, run in arms[:: -1 if round_ % 2 else 1]:
                os.sync()  # the previous run's dirty pages are written back now, not later
                sample = run()
                comparison.samples(who).append(sample)
                note(
                    f"  {comparison.direction:8} {comparison.server:8} "
                    f"{human(comparison.size):>7} {comparison.load:5} {who:4} "
                    f"{sample.mb_per_s(comparison.size):6.0f} MB/s {sample.cpu:6.2f} s CPU "
                    f"{sample.faults:7} faults"
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
        daemon.wait_for("inbox.watching", START_TIMEOUT)
        pid = daemon.proc.pid
        idle_hwm, cpu, start = vm_hwm(pid), process_cpu(pid), time.perf_counter()
        os.link(recording, root / "inbox" / recording.name)  # appears whole, at once
        daemon.wait_for("job.done", 60 + size / (5 * MB))
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


def row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def reference_facts(repeat: int) -> list[tuple[str, str]]:
    """What each side of the comparisons is, and the load conditions."""
    return [
        (
            "ours",
            "`Transfers` of this checkout, a fresh `python bench/transfer.py --client` process "
            "per run, timed around the call (upload without hashing, as the daemon does)",
        ),
        (
            "curl",
            "`curl -T FILE URL` / `curl -o FILE URL`, a process per run, timed by its own "
            "`time_total`; CPU and faults of the whole process",
        ),
        (
            "servers",
            "emulator: the emulator's signed storage (signed PUT, and the result's signed GET "
            "after upload → create-edit → poll), in a child process; plain: a server in "
            "this script, 4 MiB `recv_into` for PUT, `sendfile` for GET, in a child process",
        ),
        (
            "load",
            f"quiet: nothing else started; busy: one more process spinning on a CPU (`{SPIN}`) "
            f"during the comparison's runs; runs per client and comparison: {repeat}, "
            "interleaved (the first client alternating), `sync` before each",
        ),
    ]


def report(
    command: str,
    facts: list[tuple[str, str]],
    comparisons: list[Comparison],
    runs: list[DaemonRun],
    repeat: int,
) -> str:
    lines = [f"`{command}`", ""] + [f"- {name}: {value}" for name, value in facts]
    goals = ", ".join(f"{d} ≥ {TARGETS[d]}×" for d in DIRECTIONS)
    lines += [
        "",
        f"Throughput, MB/s (10^6 bytes): median over the runs ({repeat} per client; the "
        "best in brackets); ratio = median ours / median curl (the ratio of the best runs "
        f"in brackets); goals on the median ratio: {goals}.",
        "",
        row(
            [
                "direction",
                "server",
                "size",
                "load",
                "ours MB/s median (best)",
                "curl MB/s median (best)",
                "ratio median (best)",
                "goal",
                "verdict",
            ]
        ),
        row(["---"] * 9),
    ]
    for c in comparisons:
        cells = [
            c.direction,
            c.server,
            human(c.size),
            c.load,
            f"{c.median('ours'):.0f} (best {c.best('ours'):.0f})",
        ]
        if c.curl:
            ratio = c.median("ours") / c.median("curl")
            target = TARGETS[c.direction]
            cells += [
                f"{c.median('curl'):.0f} (best {c.best('curl'):.0f})",
                f"{ratio:.2f} (best-of {c.best('ours') / c.best('curl'):.2f})",
                f"≥ {target}×",
                verdict(ratio >= target),
            ]
        else:
            cells += ["—", "—", f"≥ {TARGETS[c.direction]}×", "— (no curl)"]
        lines.append(row(cells))
    cpu_goals = ", ".join(f"{d} ≤ {t} CPU-s/GiB" for d, t in CPU_TARGETS.items())
    lines += [
        "",
        "CPU seconds and minor page faults per GiB moved, medians of the runs. Ours: around "
        "the call, the whole fresh process (interpreter start-up and imports included) in "
        "brackets; curl: the whole process (its start-up included). Fixed costs weigh on "
        "the 64 MiB rows: read the 1 GiB ones. Ratios: ours around the call over curl. "
        f"Goal on ours around the call: {cpu_goals}.",
        "",
        row(
            [
                "direction",
                "server",
                "size",
                "load",
                "CPU s/GiB ours (process)",
                "curl",
                "ours / curl",
                "goal",
                "verdict",
                "faults/GiB ours (process)",
                "curl",
                "ours / curl",
            ]
        ),
        row(["---"] * 12),
    ]
    for c in comparisons:
        cpu = c.per_gib("ours", lambda s: s.cpu)
        faults = c.per_gib("ours", lambda s: s.faults)
        cpu_target = CPU_TARGETS.get(c.direction)
        cells = [
            c.direction,
            c.server,
            human(c.size),
            c.load,
            f"{cpu:.2f} ({c.per_gib('ours', lambda s: s.process_cpu):.2f})",
        ]
        if c.curl:
            curl_cpu = c.per_gib("curl", lambda s: s.cpu)
            cells += [f"{curl_cpu:.2f}", f"{cpu / curl_cpu:.2f}" if curl_cpu else "—"]
        else:
            cells += ["—", "—"]
        if cpu_target is None:
            cells += ["—", "—"]
        else:
            cells += [f"≤ {cpu_target}", verdict(cpu <= cpu_target)]
        cells.append(f"{faults:.0f} ({c.per_gib('ours', lambda s: s.process_faults):.0f})")
        if c.curl:
            curl_faults = c.per_gib("curl", lambda s: s.faults)
            cells += [f"{curl_faults:.0f}", f"{faults / curl_faults:.2f}" if curl_faults else "—"]
        else:
            cells += ["—", "—"]
        lines.append(row(cells))
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


def loads_of(text: str) -> list[str]:
    """Parse ``--load``: a comma-separated list of quiet and busy."""
    loads = [word.strip() for word in text.split(",") if word.strip()]
    unknown = [word for word in loads if word not in LOADS]
    if not loads or unknown or len(set(loads)) != len(loads):
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of {' and '.join(LOADS)}, each once: {text!r}"
        )
    return loads


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Transfer throughput, CPU and page faults of cvsyncd against curl, and "
        "the daemon's memory, on loopback."
    )
    parser.add_argument("--quick", action="store_true", help="64 MiB only, no daemon runs")
    parser.add_argument("--repeat", type=int, default=5, help="runs per client (default: 5)")
    parser.add_argument(
        "--load",
        type=loads_of,
        default=list(LOADS),
        help="load conditions, comma-separated: quiet (nothing else running), busy (one "
        "more process spinning on a CPU) (default: quiet,busy)",
    )
    parser.add_argument(
        "--directions",
        type=lambda text: [d for d in text.split(",") if d],
        default=list(DIRECTIONS),
        help="what to measure: upload,download (default: both)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--dir", type=Path, help="make the temporary directory here")
    parser.add_argument("--serve-plain", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--serve-emulator", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--client", nargs=4, help=argparse.SUPPRESS)  # MODE URL PATH SIZE
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.client and (args.client[0] not in DIRECTIONS or not args.client[3].isdigit()):
        parser.error("--client takes upload or download, a URL, a path and a size in bytes")
    return args


def command_line(args: argparse.Namespace) -> str:
    """The command as run, without ``--dir`` (a path of this machine)."""
    words = ["python bench/transfer.py"] + (["--quick"] if args.quick else [])
    words += ["--repeat", str(args.repeat), "--load", ",".join(args.load)]
    if args.directions != list(DIRECTIONS):
        words += ["--directions", ",".join(args.directions)]
    return " ".join(words + (["--keep"] if args.keep else []))


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
    if args.client:
        mode, url, path, size = args.client
        return client_main(mode, url, Path(path), int(size))
    if args.serve_plain:
        serve_plain(args.serve_plain)  # until the benchmark ends
        return 0
    if args.serve_emulator:
        serve_emulator(args.serve_emulator)
        return 0
    quiet_logs()
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
    facts = machine_facts(curl) + reference_facts(args.repeat)
    files = work / "files"
    files.mkdir()
    recordings = {}
    for size in sizes:
        note(f"making a {human(size)} recording …")
        recordings[size] = make_recording(files / f"bench-{size // MiB}MiB.wav", size)
    plain = Server("plain", files)
    servers.append(plain)
    emulator = Server("emulator", work / "emulator")
    servers.append(emulator)
    base_url = f"http://127.0.0.1:{emulator.port}/v2"
    plain_url = f"http://127.0.0.1:{plain.port}"
    dest = work / "download.out"

    comparisons: list[Comparison] = []
    for size, path in recordings.items():
        signed, result = asyncio.run(emulator_urls(base_url, path, size))
        if not comparisons:
            note(f"load average before the first measurement: {load_average()}")
            facts.append(("load average before the first measurement", load_average()))
        for server, up, down in [
            ("plain", f"{plain_url}/sink/{path.name}", f"{plain_url}/files/{path.name}"),
            ("emulator", signed, result),
        ]:
            for load in args.load if "upload" in args.directions else []:
                upload = Comparison("upload", server, size, load)
                ours = functools.partial(ours_upload, up, path, size)
                theirs = functools.partial(curl_upload, curl, up, path, size) if curl else None
                comparisons.append(compare(upload, args.repeat, ours, theirs))
            for load in args.load if "download" in args.directions else []:
                download = Comparison("download", server, size, load)
                ours = functools.partial(ours_download, down, dest, size)
                theirs = functools.partial(curl_download, curl, down, dest, size) if curl else None
                comparisons.append(compare(download, args.repeat, ours, theirs))
    comparisons.sort(
        key=lambda c: (
            DIRECTIONS.index(c.direction),
            c.size,
            c.server != "plain",
            args.load.index(c.load),
        )
    )

    runs = []
    if len(sizes) == 2:
        for size in sizes:
            note(f"the daemon, {human(size)} end to end …")
            runs.append(measure_daemon(work / f"daemon-{size // MiB}", base_url, recordings[size]))
    facts.append(("load average after the last measurement", load_average()))
    return report(command_line(args), facts, comparisons, runs, args.repeat)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
