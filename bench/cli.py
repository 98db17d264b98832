"""The command line's speed: start-up, `status`, and `jobs --json` over a large store.

Each figure is the median of interleaved runs (A B A B …), each command a fresh process
timed from outside, against a reference run the same way in the same loop:

- `cvsyncd --version` and `cvsyncd status` against `python -c pass` (the interpreter's
  bare start, in the same virtual environment);
- `cvsyncd jobs --json` over 100,000 jobs against `sqlite3 -json` printing the same rows
  of the same table (when the sqlite3 command is installed), and its peak memory against
  the same listing limited to 1,000 jobs (flat memory means streamed).

The machine's load average is printed before and after.

    python bench/cli.py [--rows 100000] [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cvsyncd.jobs import Store  # noqa: E402
from cvsyncd.jobs.database import DB_NAME  # noqa: E402
from cvsyncd.jobs.queries import options_key  # noqa: E402

PY = sys.executable
CVSYNCD = [PY, "-m", "cvsyncd"]
GOALS = {"version": 3.0, "status": 5.0, "jobs": 1.0}


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def fill(root: Path, rows: int) -> Path:
    """A config and a store of ``rows`` done jobs, written straight into SQLite."""
    (root / "inbox").mkdir()
    (root / "outbox").mkdir()
    (root / "key").write_text("bench-key-0123456789\n")
    os.chmod(root / "key", 0o600)
    config = root / "cvsyncd.toml"
    config.write_text(
        '[cleanvoice]\napi_key_file = "key"\n[daemon]\nstate_dir = "state"\n'
        '[presets.p]\nfillers = true\n[[folders]]\ninbox = "inbox"\noutbox = "outbox"\n'
        'preset = "p"\n'
    )
    Store.open(root / "state").close()  # created and migrated by the real code
    conn = sqlite3.connect(root / "state" / DB_NAME)
    now, options = time.time(), {"fillers": True}
    inbox = str(root / "inbox")
    with conn:
        for n in range(rows):
            name = f"show/ep{n:06d}.wav"
            outputs = [{"path": f"{root}/outbox/{name}", "written": True, "kind": "media"}]
            cur = conn.execute(
                "INSERT INTO jobs (folder, name, fingerprint, options, options_key, state,"
                " edit_id, outputs, facts, created_at, updated_at, finished_at)"
                " VALUES (?, ?, ?, ?, ?, 'done', ?, ?, '{}', ?, ?, ?)",
                (
                    inbox,
                    name,
                    f"{n:064x}",
                    json.dumps(options),
                    options_key(options),
                    f"e-{n:08x}",
                    json.dumps(outputs),
                    now,
                    now,
                    now,
                ),
            )
            conn.execute(
                "INSERT INTO inputs (job_id, position, rel_path, size, mtime_ns, fingerprint)"
                " VALUES (?, 0, ?, 1000, 1, ?)",
                (cur.lastrowid, name, f"{n:064x}"),
            )
    conn.close()
    return config


def timed(argv: Sequence[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one run, its output read and dropped."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    while proc.stdout.read(1 << 20):
        pass
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed")
    return elapsed, usage.ru_maxrss


def interleaved(a: Sequence[str], b: Sequence[str], runs: int) -> tuple[list[float], list[float]]:
    timed(a), timed(b)  # warm the page cache
    times_a, times_b = [], []
    for _ in range(runs):
        times_a.append(timed(a)[0])
        times_b.append(timed(b)[0])
    return times_a, times_b


def row(
    measure: str, ours: list[float], ref: list[float], ref_name: str, goal: str, met: bool
) -> None:
    ratios = sorted(x / y for x, y in zip(ours, ref, strict=True))
    print(
        f"| {measure} | {statistics.median(ours) * 1000:.0f} ms "
        f"| {ref_name} {statistics.median(ref) * 1000:.0f} ms "
        f"| {statistics.median(ratios):.2f}× ({ratios[0]:.2f}–{ratios[-1]:.2f}) "
        f"| {goal}: {'met' if met else 'NOT met'} |"
    )


def ratio(ours: list[float], ref: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(ours, ref, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; before: {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = fill(root, args.rows)
        c = ["-c", str(config)]
        bare = [PY, "-c", "pass"]
        print("\n| measure | cvsyncd (median) | reference (median) | ratio (min–max) | goal |")
        print("| --- | --- | --- | --- | --- |")
        ours, ref = interleaved([*CVSYNCD, "--version"], bare, args.runs)
        met = ratio(ours, ref) <= GOALS["version"]
        row("`cvsyncd --version`", ours, ref, "`python -c pass`", "≤ 3×", met)
        ours, ref = interleaved([*CVSYNCD, "status", *c], bare, args.runs)
        met = ratio(ours, ref) <= GOALS["status"]
        row(f"`cvsyncd status`, {args.rows:,} jobs", ours, ref, "`python -c pass`", "≤ 5×", met)
        listing = [*CVSYNCD, "jobs", *c, "--json"]
        sqlite = shutil.which("sqlite3")
        if sqlite:
            query = "SELECT * FROM jobs JOIN inputs ON inputs.job_id = jobs.id ORDER BY id DESC"
            reference = [sqlite, "-json", str(root / "state" / DB_NAME), query]
            ours, ref = interleaved(listing, reference, args.runs)
            met = statistics.median(ours) <= GOALS["jobs"]
            name = f"`cvsyncd jobs --json`, {args.rows:,} jobs"
            row(name, ours, ref, "`sqlite3 -json`", "≤ 1 s", met)
        else:
            ours = [timed(listing)[0] for _ in range(args.runs)]
            print(
                f"| `cvsyncd jobs --json`, {args.rows:,} jobs | "
                f"{statistics.median(ours) * 1000:.0f} ms | (no sqlite3 command) | | ≤ 1 s |"
            )
        whole = max(timed(listing)[1] for _ in range(3))
        page = max(timed([*listing, "--limit", "1000"])[1] for _ in range(3))
        print(
            f"\npeak RSS: all {args.rows:,} jobs {whole / 1024:.1f} MiB, "
            f"the first 1,000 {page / 1024:.1f} MiB (flat: streamed)"
        )
        count = len(json.loads(subprocess.run(listing, capture_output=True, check=True).stdout))
        assert count == args.rows, count
    print(f"after: {load()}; own CPU {resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime:.1f} s")


if __name__ == "__main__":
    main()
