"""``cvsyncd demo``: the first run in one command, with no account and nothing to set up.

It starts the local emulator in this process, makes ``DIR/inbox`` and ``DIR/outbox``
(``./cvsyncd-demo`` unless ``--dir`` says otherwise), writes ``DIR/config.toml`` for them,
runs the daemon on it, drops a short sample recording into the inbox and shows each job
travel to done with a progress line. Then it keeps watching (drop your own files in) until
Ctrl-C; ``--once`` stops as soon as the sample is finished (exit 0 when it is done).

Everything it writes lies inside ``DIR``: the config, the state, the emulator's files.
Each run starts afresh (the emulator forgets its edits when it stops, so a job of an
earlier run could never finish against the new one): the demo's own ``state`` and
``emulator`` folders are removed first, and only when ``DIR/config.toml`` is the demo's.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import struct
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from cvsyncd.cli.common import EXIT_FAILURE, EXIT_OK, setup
from cvsyncd.errors import CvsyncdError

if TYPE_CHECKING:
    from cvsyncd.config import Config
    from cvsyncd.daemon.lifecycle import Daemon

DEFAULT_DIR = Path("cvsyncd-demo")
PROCESSING_SECONDS = 3.0  # how long the emulator takes for an edit: long enough to watch
FOLLOW_SECONDS = 0.25  # how often the progress lines look at the jobs
SAMPLE_SECONDS = 2  # the sample's length
SAMPLE_RATE = 16000
Say = Callable[[str], None]


def arguments(parser: argparse.ArgumentParser, name: str) -> None:
    setup(parser, run, config=False)
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        help="the demo's folder: inbox, outbox, config and state go there (default: "
        "./cvsyncd-demo)",
    )
    parser.add_argument(
        "--once", action="store_true", help="exit once the sample is finished (0 when done)"
    )


HEADER = "# Written by `cvsyncd demo`"


def start_afresh(base: Path) -> None:
    """Remove the state and the emulator's files of an earlier demo run in ``base``.

    Raise CvsyncdError when a demo still runs there, or when ``base`` holds a ``state`` or
    ``emulator`` folder that is not the demo's (it is never removed).
    """
    from cvsyncd.jobs import lock_holder

    state, emulator = base / "state", base / "emulator"
    holder = lock_holder(state) if state.is_dir() else None
    if holder is not None:
        raise CvsyncdError(f"a cvsyncd demo already runs in {base} (pid {holder[0]})")
    try:
        ours = (base / "config.toml").read_text(encoding="utf-8").startswith(HEADER)
    except (OSError, UnicodeDecodeError):
        ours = False
    for place in (state, emulator):
        if not place.exists():
            continue
        if not ours:
            raise CvsyncdError(
                f"{place} exists but is not the demo's; give another folder with --dir"
            )
        shutil.rmtree(place)


def demo_config_text(base: Path, base_url: str) -> str:
    """The demo's config: one folder, the emulator's address, quick settling and polls."""
    return (
        f"{HEADER} for its own run against the local emulator; it is\n"
        "# rewritten at each demo run. `cvsyncd init` writes a config for real use.\n"
        "[cleanvoice]\n"
        f'base_url = "{base_url}"   # the emulator this demo started\n\n'
        "[daemon]\n"
        f"state_dir = {_toml_path(base / 'state')}\n"
        "settle_seconds = 1\n"
        "poll_initial_seconds = 2\n"
        "poll_min_seconds = 1\n\n"
        "[presets.podcast]\n"
        "fillers = true\n"
        "long_silences = true\n"
        "remove_noise = true\n\n"
        "[[folders]]\n"
        f"inbox = {_toml_path(base / 'inbox')}\n"
        f"outbox = {_toml_path(base / 'outbox')}\n"
        'preset = "podcast"\n'
        'after = "move"\n'
        'existing = "take"   # files already in the inbox are yours to try: take them\n'
    )


def _toml_path(path: Path) -> str:
    import json

    return json.dumps(str(path))  # a TOML basic string is a JSON string


def write_sample(inbox: Path, at: float | None = None) -> Path:
    """Write a short test tone into ``inbox`` (a temp name, then a rename: it appears
    whole) and return its path. Its pitch follows the time, so each run's sample is a new
    recording rather than a duplicate of the last one."""
    at = time.time() if at is None else at
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(at))
    target = inbox / f"sample-{stamp}.wav"
    temp = inbox / f".{target.name}.tmp"  # a hidden name: the watcher ignores it
    pitch = 220.0 + (int(at) % 200)
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * pitch * i / SAMPLE_RATE)))
        for i in range(SAMPLE_SECONDS * SAMPLE_RATE)
    )
    with wave.open(str(temp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(frames)
    os.replace(temp, target)
    return target


def run(args: argparse.Namespace, out: TextIO) -> int:
    from cvsyncd import aio
    from cvsyncd.config import load_config
    from cvsyncd.daemon import logs
    from cvsyncd.emulator import DEFAULT_API_KEY, Emulator

    base = Path(os.path.abspath(args.dir))
    if base.exists() and not base.is_dir():
        raise CvsyncdError(f"{base} is not a folder; give another place with --dir")
    base.mkdir(exist_ok=True)
    start_afresh(base)
    for place in (base / "inbox", base / "outbox"):
        place.mkdir(exist_ok=True)
    emulator = Emulator(base / "emulator", processing_seconds=PROCESSING_SECONDS)
    emulator.start()
    try:
        config_path = base / "config.toml"
        temp = base / ".config.toml.tmp"
        temp.write_text(demo_config_text(base, emulator.base_url), encoding="utf-8")
        os.replace(temp, config_path)
        config = load_config(config_path)
        logs.configure("warning")

        def say(line: str) -> None:
            print(line, file=out, flush=True)

        say(f"cvsyncd demo: the Cleanvoice API emulator runs at {emulator.base_url}")
        say(f"cvsyncd demo: watching {base / 'inbox'} → results in {base / 'outbox'}")
        ok = aio.run(_run_demo(config, DEFAULT_API_KEY, base, once=args.once, say=say))
    finally:
        emulator.stop()
    return EXIT_OK if ok else EXIT_FAILURE


async def _run_demo(config: Config, api_key: str, base: Path, *, once: bool, say: Say) -> bool:
    """Run the daemon, drop the sample, print progress; return whether the sample is done."""
    from cvsyncd.daemon.lifecycle import Daemon

    daemon = Daemon(config, api_key, log_level="warning")
    task = asyncio.create_task(daemon.run(), name="demo-daemon")
    await _until_started(daemon, task)
    sample = write_sample(base / "inbox")
    say(f"cvsyncd demo: dropped a sample recording: {sample.relative_to(base)}")
    if not once:
        say(
            "cvsyncd demo: drop your own recordings into "
            f"{base / 'inbox'} too; Ctrl-C stops the demo"
        )
    sample_state = await _follow(config, daemon, task, sample.name, once=once, say=say)
    await task
    return sample_state == "done"


async def _until_started(daemon: Daemon, task: asyncio.Task[None]) -> None:
    """Wait until the daemon's observers run (or it ended: then raise its error)."""
    while daemon.supervisor is None or not daemon.supervisor.watcher.started.is_set():
        if task.done():
            task.result()  # its error, if any
            raise CvsyncdError("the demo's daemon stopped before it started")
        await asyncio.sleep(0.05)


async def _follow(
    config: Config,
    daemon: Daemon,
    task: asyncio.Task[None],
    sample_name: str,
    *,
    once: bool,
    say: Say,
) -> str | None:
    """Print a line whenever a job changes, until the daemon stops (or, with ``once``, the
    sample is finished: then stop it). Return the sample's final state."""
    from cvsyncd.daemon.oneshot import describe
    from cvsyncd.jobs import TERMINAL, JobState, Store

    outbox = config.folders[0].outbox

    store = Store.open_existing(config.daemon.state_dir, verify=False)
    assert store is not None  # the daemon made it before it started watching
    shown: dict[int, str] = {}
    sample_state: str | None = None
    try:
        while not task.done():
            for job in reversed(store.jobs(limit=50)):
                line = describe(job)
                if shown.get(job.id) != line:
                    shown[job.id] = line
                    say(line)
                finished = job.state in TERMINAL and sample_state is None
                if finished and Path(job.name).name == sample_name:
                    sample_state = job.state.value
                    say(
                        f"cvsyncd demo: the sample is cleaned: see {outbox}"
                        if job.state is JobState.DONE
                        else f"cvsyncd demo: the sample ended {job.state}: {job.error}"
                    )
            if once and sample_state is not None:
                daemon.stop.set()
                break
            await asyncio.sleep(FOLLOW_SECONDS)
    finally:
        store.close()
    return sample_state
