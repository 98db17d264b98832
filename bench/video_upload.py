"""Video without sending the picture: bytes uploaded and wall time, ``full`` against ``audio``.

    python bench/video_upload.py [--seconds 120] [--size 1920x1080] [--bitrate 20M]
                                 [--uplink-mbps 20] [--keep] [--dir DIR]

ffmpeg makes a high-bitrate test video (its ``testsrc2`` pattern with grain, so the encoder
cannot squeeze it, H.264 at ``--bitrate`` constant rate; a 440 Hz tone as 128 kb/s AAC).
Then, for each of ``video_upload = "full"`` and ``"audio"``, a fresh daemon (``python -m
cvsyncd run``, an enhance-only preset, ``after = "keep"``) takes a copy of it from its inbox,
against the emulator on 127.0.0.1, until ``job.done``. Printed side by side:

- the bytes uploaded (the emulator's request log: the bodies of the storage PUTs), and that
  as a share of the video file (target for ``audio``: at most 5 %);
- the wall time from the daemon's start to ``job.done`` on loopback: for ``audio`` it
  includes extracting the sound and remuxing the cleaned sound into the video;
- the upload time those bytes would take on a home uplink of ``--uplink-mbps`` (computed:
  bytes * 8 / rate; the loopback is far faster than any uplink), and that plus the local
  work, as an estimate of the wall time at home.

The emulator's "processing" is set to 1 s for both, so that the comparison is about what
cvsyncd does, not about the service.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cvsyncd.emulator import Emulator  # noqa: E402

KEY = "bench-key-0123456789"
PRESET = 'remove_noise = true\nnormalize = true\nstudio_sound = "nightly"'
TARGET_SHARE = 0.05


def make_video(path: Path, seconds: int, size: str, bitrate: str) -> None:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        sys.exit("ffmpeg is not installed (apt-get install ffmpeg)")
    subprocess.run(
        [
            ffmpeg, "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
            "-vf", "noise=alls=30:allf=t",
            "-c:v", "libx264", "-preset", "ultrafast",
            "-b:v", bitrate, "-minrate", bitrate, "-maxrate", bitrate, "-bufsize", bitrate,
            "-x264-params", "nal-hrd=cbr",
            "-c:a", "aac", "-b:a", "128k", str(path),
        ],
        check=True,
    )  # fmt: skip


def run_daemon(root: Path, video: Path, mode: str, emulator: Emulator) -> dict[str, float]:
    """One daemon, one video, until job.done; the figures of that run."""
    for name in ("inbox", "outbox", "state"):
        (root / name).mkdir(parents=True)
    key = root / "api_key"
    key.write_text(KEY + "\n")
    key.chmod(0o600)
    config = root / "cvsyncd.toml"
    config.write_text(
        textwrap.dedent(f"""\
        [cleanvoice]
        base_url = "{emulator.base_url}"
        api_key_file = "api_key"
        expected_processing_ratio = 0.0001

        [daemon]
        state_dir = "state"
        settle_seconds = 0.5
        poll_initial_seconds = 0.5
        poll_min_seconds = 0.2
        poll_max_seconds = 1

        [presets.clean]
        {PRESET.replace(chr(10), chr(10) + "        ")}

        [[folders]]
        inbox = "inbox"
        outbox = "outbox"
        preset = "clean"
        after = "keep"
        video_upload = "{mode}"
        """)
    )
    os.link(video, root / "inbox" / video.name)  # in place before the daemon looks
    before = len(emulator.requests())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEANVOICE", "CVSYNCD"))}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cvsyncd", "run", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=root,
    )
    assert proc.stdout is not None
    done = None
    decision: dict[str, str] = {}
    for line in proc.stdout:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("event") == "job.video_upload":
            decision = event
        if event.get("event") == "job.done":
            done = time.monotonic() - started
            break
        if event.get("event") == "job.failed":
            proc.kill()
            sys.exit(f"the {mode} run failed: {event.get('error')}")
    proc.terminate()
    proc.wait(timeout=60)
    if done is None:
        sys.exit(f"the {mode} run ended without job.done")
    requests = emulator.requests()[before:]
    sent = sum(r.get("bytes_in") or 0 for r in requests if r.get("endpoint") == "put")
    out = root / "outbox" / video.name
    return {
        "uploaded": float(sent),
        "wall": done,
        "output": float(out.stat().st_size),
        "mode": decision.get("mode", "?"),  # type: ignore[dict-item]
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--bitrate", default="20M")
    parser.add_argument("--uplink-mbps", type=float, default=20.0)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--dir", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cvsyncd-bench-video-", dir=args.dir))
    try:
        video = work / "episode.mp4"
        t0 = time.monotonic()
        make_video(video, args.seconds, args.size, args.bitrate)
        size = video.stat().st_size
        print(
            f"test video: {args.seconds} s, {args.size}, H.264 at {args.bitrate}b/s + AAC "
            f"128 kb/s: {size / 1e6:.1f} MB (made in {time.monotonic() - t0:.0f} s)"
        )
        emulator = Emulator(work / "emulator", api_key=KEY, processing_seconds=1.0)
        emulator.start()
        try:
            figures = {
                mode: run_daemon(work / mode, video, mode, emulator) for mode in ("full", "audio")
            }
        finally:
            emulator.stop()
        rate = args.uplink_mbps * 1e6 / 8
        print()
        print(
            f"| video_upload | bytes uploaded | share of the video | wall time (loopback) "
            f"| upload at {args.uplink_mbps:g} Mb/s (computed) | estimated wall time at home |"
        )
        print("| --- | --- | --- | --- | --- | --- |")
        for mode, f in figures.items():
            upload = f["uploaded"] / rate
            # the loopback upload itself is part of the wall time; the uplink's replaces it
            print(
                f"| {mode} (sent: {f['mode']}) | {f['uploaded'] / 1e6:.2f} MB "
                f"| {f['uploaded'] / size:.1%} | {f['wall']:.1f} s | {upload:.0f} s "
                f"| {f['wall'] + upload:.0f} s |"
            )
        share = figures["audio"]["uploaded"] / size
        verdict = "met" if share <= TARGET_SHARE else "NOT met"
        print(f"\ntarget: audio uploads at most {TARGET_SHARE:.0%} of the video: {verdict}")
        return 0 if share <= TARGET_SHARE else 1
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
