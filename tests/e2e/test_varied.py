"""The daemon against the emulator in varied mode: every documented shape of every answer.

Each run pins every point of variation to one of its options (run ``i`` takes option ``i``
of each point, cycling), so that six runs serve every option at least once; two more runs
pick freely with a seed. A folder asks for everything (transcript, summary, social posts,
markers); two recordings must end done with all their files, one whose edit fails must
end failed with the service's reason in plain words, and a file Cleanvoice refuses at
create time must fail alone while the daemon goes on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cvsyncd.emulator import Emulator, FaultSettings
from cvsyncd.emulator.variants import POINTS
from tests.conftest import EMULATOR_KEY, Setup, adts_bytes, creates, make_wav

pytestmark = pytest.mark.e2e

EVERYTHING = """fillers = true
transcription = true
summarize = true
social_content = true
export_timestamps = true"""
FAST = "retry_initial_seconds = 0.2\nretry_max_seconds = 1.5"
RUNS = max(len(options) for options in POINTS.values())


def pinned(run: int) -> dict[str, str]:
    return {point: options[run % len(options)] for point, options in POINTS.items()}


def texts_in(folder: Path) -> dict[str, str]:
    return {
        p.name: p.read_text(encoding="utf-8")
        for p in folder.rglob("*")
        if p.is_file() and p.suffix in (".md", ".txt", ".json", ".csv", ".srt", ".vtt")
    }


def run_daemon(tmp_path: Path, emulator: Emulator) -> tuple[Setup, list[dict[str, Any]]]:
    setup = Setup(tmp_path, emulator.base_url, after="move", preset=EVERYTHING, extra_daemon=FAST)
    make_wav(setup.inbox / "ep1.wav", seconds=2.0, freq=330)
    make_wav(setup.inbox / "show" / "ep2.wav", seconds=3.0, freq=550)
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.done", path="ep1.wav", timeout=60)
        daemon.wait_for_event("job.done", path="show/ep2.wav", timeout=60)
        emulator.set_faults(
            FaultSettings(rate=1.0, kinds=frozenset({"failure"}), endpoints=frozenset({"create"}))
        )
        make_wav(setup.inbox / "doomed.wav", seconds=1.0, freq=770)
        daemon.wait_for_event("job.failed", path="doomed.wav", timeout=60)
    finally:
        assert daemon.stop() == 0
    return setup, setup.jobs()


def check_outputs(setup: Setup, jobs: list[dict[str, Any]], pins: dict[str, str]) -> None:
    states = {j["name"]: j["state"] for j in jobs}
    assert states == {"ep1.wav": "done", "show/ep2.wav": "done", "doomed.wav": "failed"}
    for name in ("ep1", "show/ep2"):
        stem = setup.outbox / name
        media = setup.outbox / f"{name}.wav"
        assert media.read_bytes() == (setup.inbox / "done" / f"{name}.wav").read_bytes()
        for suffix in (
            ".transcript.txt",
            ".transcript.srt",
            ".summary.md",
            ".chapters.json",
            ".social.md",
            ".markers.reaper.csv",
            ".markers.audition.csv",
            ".markers.cuts.json",
            ".cleanvoice.json",
        ):
            assert Path(f"{stem}{suffix}").is_file(), f"{name}{suffix} is missing"
        social = Path(f"{stem}.social.md").read_text(encoding="utf-8")
        for post in ("Emulated newsletter", "Emulated thread", "Emulated LinkedIn post"):
            assert post in social
        if pins.get("social-shape") == "mapping-more":
            assert "Emulated Instagram caption" in social
        labels = Path(f"{stem}.markers.timeline_audacity.txt").read_text(encoding="utf-8")
        assert labels.count("\t") >= 2 and "CUT_" in labels
        if pins.get("markers-shape") == "list-with-json":
            cuts = json.loads(Path(f"{stem}.markers.timestamps.json").read_text())
            assert cuts and {"start", "end", "label"} <= set(cuts[0])
    for name, text in texts_in(setup.outbox).items():
        assert "{'" not in text and "None" not in text, f"a Python repr in {name}"
    note = (setup.inbox / "failed" / "doomed.wav.error.txt").read_text(encoding="utf-8")
    if pins.get("failure-shape") == "null":
        assert "it gave no reason" in note
    elif not pins:
        assert "it gave no reason" in note or "Emulated processing failure" in note
    else:
        assert "Emulated processing failure" in note
    assert "{'" not in note and '{"' not in note


@pytest.mark.parametrize("run", range(RUNS))
def test_every_shape_of_every_answer_is_read(tmp_path: Path, run: int) -> None:
    pins = pinned(run)
    with Emulator(
        tmp_path / "emulator",
        api_key=EMULATOR_KEY,
        processing_seconds=0.5,
        vary=run,
        vary_pin=pins,
    ) as emulator:
        setup, jobs = run_daemon(tmp_path, emulator)
        served = emulator.variants.report()
    check_outputs(setup, jobs, pins)
    # the pinned shapes really were served, where the run reached them
    for point in ("social-shape", "markers-shape", "not-asked", "failure-shape"):
        assert served[point] == {pins[point]: served[point][pins[point]]}, point
    assert len(creates(emulator)) == 3


@pytest.mark.parametrize("seed", [101, 202])
def test_freely_varied_answers(tmp_path: Path, seed: int) -> None:
    with Emulator(
        tmp_path / "emulator", api_key=EMULATOR_KEY, processing_seconds=0.5, vary=seed
    ) as emulator:
        setup, jobs = run_daemon(tmp_path, emulator)
        served = emulator.variants.report()
    check_outputs(setup, jobs, {})
    assert sum(len(options) for options in served.values()) > len(served)  # variety, not one


def test_a_recording_refused_at_create_fails_alone_with_the_services_words(
    tmp_path: Path,
) -> None:
    """422 at create (a format the service will not take): the job fails, nothing is
    billed, the daemon goes on with the next recording."""
    with Emulator(
        tmp_path / "emulator",
        api_key=EMULATOR_KEY,
        processing_seconds=0.5,
        vary=7,
        vary_pin={"uncertain-format": "refuse"},
    ) as emulator:
        setup = Setup(
            tmp_path,
            emulator.base_url,
            after="move",
            extra_daemon=FAST,
            extra_folder='extensions = ["wav", "aac"]',
        )
        (setup.inbox / "talk.aac").write_bytes(adts_bytes())
        make_wav(setup.inbox / "fine.wav")
        daemon = setup.daemon()
        try:
            daemon.wait_for_event("job.failed", path="talk.aac", timeout=60)
            daemon.wait_for_event("job.done", path="fine.wav", timeout=60)
        finally:
            assert daemon.stop() == 0
        refused = [r for r in emulator.requests() if r["endpoint"] == "create"]
    jobs = {j["name"]: j for j in setup.jobs()}
    assert jobs["fine.wav"]["state"] == "done"
    assert jobs["talk.aac"]["state"] == "failed"
    error = jobs["talk.aac"]["error"]
    assert "Cleanvoice refused to create an edit for this recording (HTTP 422" in error
    assert "File format not supported. Please use MP3, WAV, M4A, or FLAC" in error
    assert "Nothing was billed" in error
    assert [r["status"] for r in refused].count(422) == 1  # refused once, not retried
    assert (setup.inbox / "failed" / "talk.aac.error.txt").is_file()
