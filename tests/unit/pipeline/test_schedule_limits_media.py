"""Polling schedule, request budgets and local media probing."""

from __future__ import annotations

import asyncio
import dataclasses
import struct
from pathlib import Path
from typing import Any

import pytest

from cvsyncd.cleanvoice.budget import Budget
from cvsyncd.config import CleanvoiceSettings, Config, DaemonSettings
from cvsyncd.inbox.media import probe, sniff
from cvsyncd.pipeline import schedule
from tests.conftest import make_wav


def config(**cleanvoice: Any) -> Config:
    return Config(
        path=Path("/etc/cvsyncd/config.toml"),
        cleanvoice=dataclasses.replace(CleanvoiceSettings(), **cleanvoice),
        daemon=DaemonSettings(state_dir=Path("/var/lib/cvsyncd")),
    )


def poll_times(cfg: Config, duration: float | None, finished_after: float) -> list[float]:
    """When the daemon would poll an edit that finishes after ``finished_after`` seconds."""
    t = schedule.first_poll_delay(cfg, duration)
    times = [t]
    polls = 0
    while t < finished_after:
        polls += 1
        t += schedule.next_poll_delay(cfg, polls, duration)
        times.append(t)
    return times


def test_the_docs_timings_give_few_polls() -> None:
    cfg = config()
    # "about 30 s for a 2-3 minute clip": first poll at 30 s, then every 10 s
    assert schedule.first_poll_delay(cfg, 150) == 30
    assert schedule.next_poll_delay(cfg, 1, 150) == 10
    # "5-10 minutes for an hour": the first poll waits most of that, and few follow
    assert schedule.first_poll_delay(cfg, 3600) == pytest.approx(360)
    for minutes in (5, 7.5, 10):
        assert len(poll_times(cfg, 3600, minutes * 60)) <= 6
    # unknown duration: start at poll_initial_seconds and grow to poll_max_seconds
    assert schedule.first_poll_delay(cfg, None) == 30
    assert [schedule.next_poll_delay(cfg, n, None) for n in (1, 2, 3, 4, 9)] == [
        30,
        45,
        67.5,
        101.25,
        120,
    ]


def test_polls_never_come_closer_than_poll_min() -> None:
    cfg = config()
    for duration in (None, 1, 60, 600, 3600, 36000):
        for polls in range(1, 30):
            delay = schedule.next_poll_delay(cfg, polls, duration)
            assert cfg.daemon.poll_min_seconds <= delay <= cfg.daemon.poll_max_seconds
    assert schedule.next_poll_delay(cfg, 3, 3600, result_pending=True) == 5


def test_overdue_and_expiry() -> None:
    cfg = config(retention_seconds=7 * 86400)
    assert not schedule.is_overdue(cfg, 3600, 20 * 60)
    assert schedule.is_overdue(cfg, 3600, 90 * 60)
    assert schedule.is_overdue(cfg, None, 3 * 3600)
    assert not schedule.has_expired(cfg, 1000.0, 1000.0 + 6 * 86400)
    assert schedule.has_expired(cfg, 1000.0, 1000.0 + 8 * 86400)
    assert not schedule.has_expired(cfg, None, 1e12)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_budget_allows_no_more_than_its_limit_in_any_minute() -> None:
    clock = FakeClock()
    budget = Budget(30, clock=clock)
    sent: list[float] = []

    async def burst() -> None:
        async def fake_sleep(seconds: float) -> None:
            clock.now += seconds

        original = asyncio.sleep
        asyncio.sleep = fake_sleep  # type: ignore[assignment]
        try:
            for _ in range(100):
                await budget.acquire()
                sent.append(clock.now)
                clock.now += 0.01
        finally:
            asyncio.sleep = original

    asyncio.run(burst())
    for i, t in enumerate(sent):
        in_window = [u for u in sent[: i + 1] if t - u < 60]
        assert len(in_window) <= 30
    assert sent[29] - sent[0] < 1  # a burst of 30 goes at once
    assert sent[30] - sent[0] >= 60  # the 31st waits for the window


def test_a_refusal_closes_the_budget_for_everyone() -> None:
    clock = FakeClock()
    budget = Budget(300, clock=clock)
    budget.close_for(7)
    assert budget.delay() == pytest.approx(7)
    clock.now += 7
    assert budget.delay() == 0
    budget.close_for(None)  # a 429 without Retry-After: a default pause
    assert budget.delay() > 0


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "wav"),
        (b"ID3\x04\x00\x00", "mp3"),
        (b"\xff\xfb\x90\x00", "mp3"),
        (b"\xff\xf1\x50\x80", "aac"),
        (b"fLaC\x00\x00\x00\x22", "flac"),
        (b"OggS\x00\x02", "ogg"),
        (b"\x00\x00\x00\x20ftypM4A ", "mp4"),
        (b"\x00\x00\x00\x14ftypqt  ", "mp4"),
        (b"\x1a\x45\xdf\xa3\x01\x00", "matroska"),
        (b"FORM\x00\x00\x00\x00AIFF", "aiff"),
        (b"<html><body>", None),
        (b"%PDF-1.7", None),
        (b"PK\x03\x04", None),
    ],
)
def test_sniff(header: bytes, kind: str | None) -> None:
    assert sniff(header) == kind


def test_probe_reads_the_duration_of_a_real_wav(tmp_path: Path) -> None:
    found = probe(make_wav(tmp_path / "a.wav", seconds=2.5))
    assert found.ok and found.format == "wav"
    assert found.duration == pytest.approx(2.5, abs=0.01)


def test_probe_names_the_problem_of_bad_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    assert probe(empty).problem == "the file is empty (0 bytes)"
    text = tmp_path / "notes.wav"
    text.write_text("just some text\n" * 10)
    problem = probe(text).problem
    assert problem is not None and "not an audio or video file" in problem
    # a media header is not enough: the header is parsed, and must hold what it promises
    full = make_wav(tmp_path / "full.wav").read_bytes()
    truncated = tmp_path / "cut.wav"
    truncated.write_bytes(full[:100])
    assert "cut short: its header promises 32000 bytes of audio, it holds 56" in str(
        probe(truncated).problem
    )
    header_only = tmp_path / "header.wav"
    header_only.write_bytes(full[:44])
    assert "a WAV header followed by no audio at all" in str(probe(header_only).problem)
    weird = tmp_path / "weird.mp3"
    weird.write_bytes(b"ID3" + struct.pack(">B", 4) + b"\x00" * 60)
    assert "starts like an MP3 file but cannot be read as one" in str(probe(weird).problem)
    silent = tmp_path / "silent.wav"
    silent.write_bytes(full[:40] + b"\x00\x00\x00\x00")  # data chunk of 0 bytes
    assert probe(silent).problem is not None
