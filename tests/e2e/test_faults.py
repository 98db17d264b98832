"""Talking to a misbehaving API: every emulator fault mode, account trouble, request
budgets, resumed downloads and expired edits — the daemon as a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import time
import zlib
from pathlib import Path

import pytest

from cvsyncd.cleanvoice.client import CleanvoiceClient
from cvsyncd.emulator import Emulator, FaultSettings
from cvsyncd.emulator.faults import KINDS as EMULATOR_KINDS
from cvsyncd.errors import TransientApiError
from cvsyncd.outbox.files import is_temp_name
from tests.conftest import EMULATOR_KEY, Setup, creates, make_wav

pytestmark = pytest.mark.e2e

FAST = "retry_initial_seconds = 0.2\nretry_max_seconds = 1.5"
# kinds that leave a create-edit's outcome unknown are covered in tests/e2e/test_reliability.py;
# here every kind is injected everywhere it cannot create an edit twice
AMBIGUOUS_ON_CREATE = {"500", "502", "503", "500-after", "reset", "reset-after", "badjson"}
KINDS = [k for k in EMULATOR_KINDS if k != "failure"]  # "failure" fails a job: see test_e2e
ENDPOINTS = frozenset({"upload", "put", "create", "get", "delete", "download", "account"})


@pytest.mark.parametrize("kind", KINDS)
def test_every_fault_mode_ends_done_without_duplicates(tmp_path: Path, kind: str) -> None:
    endpoints = ENDPOINTS - {"create"} if kind in AMBIGUOUS_ON_CREATE else ENDPOINTS
    faults = FaultSettings(
        rate=0.4, kinds=frozenset({kind}), endpoints=endpoints, slow_seconds=0.3, retry_after=1
    )
    emulator = Emulator(
        tmp_path / "emulator",
        api_key=EMULATOR_KEY,
        processing_seconds=0.5,
        faults=faults,
        seed=zlib.crc32(kind.encode()),
    )
    emulator.start()
    try:
        setup = Setup(tmp_path, emulator.base_url, after="move", extra_daemon=FAST)
        for i in range(3):
            make_wav(setup.inbox / f"ep{i}.wav", freq=300 + 100 * i)
        daemon = setup.daemon()
        try:
            daemon.wait_for(
                lambda: sum(e.get("event") == "job.done" for e in daemon.events()) == 3,
                timeout=90,
                what="three recordings done",
            )
        finally:
            assert daemon.stop() == 0
        injected = [r for r in emulator.requests() if r.get("fault") == kind]
        assert injected, f"no {kind} fault was injected"
        made = [r["files"][0].rsplit("/", 1)[-1] for r in creates(emulator)]
        assert sorted(made) == ["ep0.wav", "ep1.wav", "ep2.wav"]  # one create each
        assert sorted(j["state"] for j in setup.jobs()) == ["done"] * 3
        for i in range(3):
            assert (setup.outbox / f"ep{i}.wav").read_bytes() == (
                setup.inbox / "done" / f"ep{i}.wav"
            ).read_bytes()
    finally:
        emulator.stop()


def test_an_interrupted_download_resumes_with_range(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep", extra_daemon=FAST)
    recording = make_wav(setup.inbox / "long.wav", seconds=20)
    emulator.set_faults(
        FaultSettings(rate=1.0, kinds=frozenset({"truncate"}), endpoints=frozenset({"download"}))
    )
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.retry", path="long.wav", state="fetching")
        emulator.set_faults(FaultSettings())
        daemon.wait_for_event("job.done", path="long.wav")
    finally:
        assert daemon.stop() == 0
    downloads = [r for r in emulator.requests() if r["endpoint"] == "download"]
    cut = next(r for r in downloads if r["fault"] == "truncate")
    resumed = [r for r in downloads if r["status"] == 206]
    assert resumed, downloads
    size = recording.stat().st_size
    assert cut["bytes_out"] + resumed[-1]["bytes_out"] <= size + 2000  # not sent twice
    assert (setup.outbox / "long.wav").read_bytes() == recording.read_bytes()


def test_results_not_fetched_before_the_edit_expired_fail_clearly(tmp_path: Path) -> None:
    emulator = Emulator(
        tmp_path / "emulator",
        api_key=EMULATOR_KEY,
        processing_seconds=0.3,
        retention_seconds=1.0,
        faults=FaultSettings(
            rate=1.0, kinds=frozenset({"expired-url"}), endpoints=frozenset({"download"})
        ),
    )
    emulator.start()
    try:
        setup = Setup(tmp_path, emulator.base_url, after="move", extra_daemon=FAST)
        with open(setup.config, "a") as f:
            f.write("")
        text = setup.config.read_text().replace(
            'api_key_file = "api_key"', 'api_key_file = "api_key"\nretention_seconds = 2'
        )
        setup.config.write_text(text)
        make_wav(setup.inbox / "ep.wav")
        daemon = setup.daemon()
        try:
            daemon.wait_for_event("job.failed", path="ep.wav", timeout=60)
        finally:
            assert daemon.stop() == 0
        [job] = setup.jobs()
        assert job["state"] == "failed"
        assert "expired at Cleanvoice before its results could be fetched" in job["error"]
        assert (setup.inbox / "failed" / "ep.wav").exists()
        # the download kept for resuming ends with the job, not at the next start
        assert daemon.count("job.retry", path="ep.wav") >= 1
        assert [p.name for p in setup.outbox.rglob("*") if is_temp_name(p.name)] == []
    finally:
        emulator.stop()


def test_a_refused_key_pauses_and_a_new_key_resumes(tmp_path: Path, emulator: Emulator) -> None:
    setup = Setup(tmp_path, emulator.base_url, extra_daemon=FAST)
    setup.key_file.write_text("an-old-revoked-key\n")
    make_wav(setup.inbox / "ep.wav")
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("account.paused")
        report = json.loads(setup.cli("status", "-c", str(setup.config), "--json").stdout)
        assert "refused the API key" in report["paused"]
        text = setup.cli("status", "-c", str(setup.config)).stdout
        assert "PAUSED:" in text
        [job] = setup.jobs()
        assert job["state"] == "queued"  # nothing failed
        setup.key_file.write_text(EMULATOR_KEY + "\n")  # the user fixes the key
        os.chmod(setup.key_file, 0o600)
        daemon.wait_for_event("account.key_changed")
        daemon.wait_for_event("job.done", path="ep.wav")
    finally:
        assert daemon.stop() == 0
    assert (
        json.loads(setup.cli("status", "-c", str(setup.config), "--json").stdout)["paused"] is None
    )
    assert "an-old-revoked-key" not in daemon.log_text


def test_no_credits_pauses_without_failing_jobs(tmp_path: Path) -> None:
    emulator = Emulator(
        tmp_path / "emulator", api_key=EMULATOR_KEY, processing_seconds=0.3, credits=0.001
    )
    emulator.start()
    setup = Setup(tmp_path, emulator.base_url, extra_daemon=FAST)
    make_wav(setup.inbox / "ep.wav")
    try:
        daemon = setup.daemon()
        try:
            daemon.wait_for_event("account.paused")
            daemon.stays(
                lambda: daemon.count("job.failed") == 0 and not creates(emulator),
                2,
                "the paused job would be submitted or failed at the next turn, within ms",
            )
        finally:
            assert daemon.stop() == 0
        [job] = setup.jobs()
        assert job["state"] == "uploaded"  # waiting, not failed
        report = json.loads(setup.cli("status", "-c", str(setup.config), "--json").stdout)
        assert "no credits left" in report["paused"]
        account = setup.cli("account", "-c", str(setup.config))
        assert account.returncode == 0 and "credit:" in account.stdout
    finally:
        emulator.stop()
    assert creates(emulator) == []


def test_the_client_budget_keeps_a_burst_within_the_api_limit(
    tmp_path: Path, emulator: Emulator
) -> None:
    """34 upload requests at once against the emulator's real 30/minute limit: none is
    refused, the last four wait for the window."""

    async def burst() -> list[float]:
        async with CleanvoiceClient(emulator.base_url, EMULATOR_KEY) as client:
            start = time.monotonic()

            async def one(i: int) -> float:
                await client.request_upload_url(f"ep{i}.wav")
                return time.monotonic() - start

            return await asyncio.gather(*(one(i) for i in range(34)))

    times = sorted(asyncio.run(burst()))
    refused = [r for r in emulator.requests() if r["status"] == 429]
    assert refused == []
    assert times[29] < 10 and times[30] >= 59


def test_a_429_slows_every_job_of_the_client(tmp_path: Path, emulator: Emulator) -> None:
    emulator.set_faults(
        FaultSettings(
            rate=1.0, kinds=frozenset({"429"}), endpoints=frozenset({"upload"}), retry_after=3
        )
    )

    async def go() -> float:
        async with CleanvoiceClient(emulator.base_url, EMULATOR_KEY) as client:
            with pytest.raises(TransientApiError):
                await client.request_upload_url("a.wav")
            emulator.set_faults(FaultSettings())
            start = time.monotonic()
            await client.request_upload_url("b.wav")  # another job's request
            return time.monotonic() - start

    assert asyncio.run(go()) >= 2.9
