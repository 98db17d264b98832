"""Chaos: RECORDINGS (32) recordings, the daemon killed with SIGKILL KILLS (10) times (or
more, up to twice as many, until MIN_KILLS_IN_STEPS of them cut a step short) at random
moments while the emulator injects faults (FAULTS: 12 % of requests, every kind but
a deliberate edit failure). In the end every recording is done or visibly
needs_attention, none was created twice, and no partial output exists — and the run was
chaotic enough to mean something: at least MIN_KILLS_IN_STEPS kills landed inside a step,
and faults of at least MIN_FAULT_KINDS kinds were served.

The seed and the figures are printed (``pytest -s``); ``CVSYNCD_CHAOS_SEED=N`` replays a
run.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import pytest

from cvsyncd.emulator import Emulator, FaultSettings
from cvsyncd.emulator.faults import KINDS
from cvsyncd.outbox.files import is_temp_name
from tests.conftest import EMULATOR_KEY, DaemonProcess, Setup, make_wav

pytestmark = pytest.mark.e2e

RECORDINGS = 32
KILLS = 10
MIN_KILLS_IN_STEPS = 2  # of KILLS; runs cut 3 to 9 steps short (seeds 1 to 6)
MIN_FAULT_KINDS = 3  # of the kinds in FAULTS; runs serve 8 to 10 (seeds 1 to 6)
FAULTS = FaultSettings(
    rate=0.12,
    kinds=frozenset(KINDS) - {"failure"},  # every fault but a deliberate edit failure
    slow_seconds=0.5,
    retry_after=1,
)


def recording_of(file_url: str) -> str:
    return unquote(PurePosixPath(urlsplit(file_url).path).name)


STEP_BOUNDS = {"job.uploading": "job.uploaded", "job.submitting": "job.submitted"}


def inside_a_step(setup: Setup, daemon: DaemonProcess) -> bool:
    """Whether a kill landed while a step was under way: an upload or a create-edit the
    log shows begun and not ended, or one of our temp files in the outbox (a download or
    a write cut short)."""
    events = [e.get("event") for e in daemon.events()]
    if any(events.count(start) > events.count(end) for start, end in STEP_BOUNDS.items()):
        return True
    return any(is_temp_name(p.name) for p in setup.outbox.rglob("*"))


def test_chaos(tmp_path: Path) -> None:
    seed = int(os.environ.get("CVSYNCD_CHAOS_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"\nchaos seed: {seed}")
    emulator = Emulator(
        tmp_path / "emulator",
        api_key=EMULATOR_KEY,
        processing_seconds=0.5,
        rate_limits=False,
        faults=FAULTS,
        seed=seed,
    )
    emulator.start()
    try:
        figures = run_chaos(tmp_path, emulator, rng)
    finally:
        emulator.stop()
    print("chaos figures: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def run_chaos(tmp_path: Path, emulator: Emulator, rng: random.Random) -> dict[str, int]:
    setup = Setup(
        tmp_path,
        emulator.base_url,
        after="move",
        extra_daemon="retry_initial_seconds = 0.2\nretry_max_seconds = 2\n"
        "max_active_edits = 6\nmax_concurrent_uploads = 3",
    )
    originals: dict[str, bytes] = {}
    for i in range(RECORDINGS):
        sub = ("", "show-a/", "show-b/season 2/")[i % 3]
        path = make_wav(
            setup.inbox / f"{sub}ep{i:02d}.wav", seconds=0.3 + (i % 5) * 0.1, freq=150 + 37 * i
        )
        originals[f"ep{i:02d}.wav"] = path.read_bytes()

    kills = in_steps = 0
    # KILLS kills, and more (up to twice as many) until MIN_KILLS_IN_STEPS of them cut a
    # step short: on a loaded machine the start-up takes most of a short life
    while kills < KILLS or (in_steps < MIN_KILLS_IN_STEPS and kills < 2 * KILLS):
        daemon = setup.daemon()
        time.sleep(rng.uniform(0.4, 2.5))
        daemon.kill()
        kills += 1
        in_steps += inside_a_step(setup, daemon)

    final_states = ("done", "needs_attention")
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("daemon.started")
        daemon.wait_for(
            lambda: (
                len(jobs := setup.jobs()) == RECORDINGS
                and all(j["state"] in final_states for j in jobs)
            ),
            timeout=240,
            what="every recording done or needs_attention",
        )
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log_text[-3000:]

    jobs = setup.jobs()
    states = Counter(j["state"] for j in jobs)
    assert set(states) <= set(final_states), states
    assert sorted(PurePosixPath(j["name"]).name for j in jobs) == sorted(originals)

    creates = [r for r in emulator.requests() if r["endpoint"] == "create" and r["processed"]]
    per_recording = Counter(recording_of(r["files"][0]) for r in creates)
    duplicates = {name: n for name, n in per_recording.items() if n > 1}
    assert not duplicates, f"submitted twice: {duplicates}"

    outputs = [p for p in setup.outbox.rglob("*") if p.is_file()]
    assert not [p for p in outputs if is_temp_name(p.name)], "a temp file was left"
    for job in jobs:
        name = PurePosixPath(job["name"])
        media = setup.outbox / name
        record = setup.outbox / name.parent / f"{name.stem}.cleanvoice.json"
        if job["state"] == "done":
            assert media.read_bytes() == originals[name.name]
            json.loads(record.read_text())
            assert (setup.inbox / "done" / name).read_bytes() == originals[name.name]
            assert not (setup.inbox / name).exists()
            assert per_recording[name.name] == 1
        else:
            assert not media.exists() and not record.exists()
            assert (setup.inbox / name).read_bytes() == originals[name.name]
            assert "may or may not" in job["error"]
    faults = Counter(r["fault"] for r in emulator.requests() if r.get("fault"))
    # the run was chaotic: kills cut steps short, and faults of several kinds were served
    # (a run in which every kill fell between steps would prove little)
    assert in_steps >= MIN_KILLS_IN_STEPS, f"only {in_steps} of {kills} kills inside a step"
    assert len(faults) >= MIN_FAULT_KINDS, f"faults served: {dict(faults)}"
    return {
        "recordings": RECORDINGS,
        "kills": kills,
        "kills_inside_steps": in_steps,
        "creates": len(creates),
        "duplicates": len(duplicates),
        "done": states["done"],
        "ambiguous": states["needs_attention"],
        "faults_injected": sum(faults.values()),
        "fault_kinds": len(faults),
        "requests": len(emulator.requests()),
    }
