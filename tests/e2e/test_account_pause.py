"""Out of credit: HTTP 402 pauses every new upload and submission and fails nothing; work
resumes by itself once credit is added, whichever shape the account answer takes (with a
balance to compare, or without one: then by a trial)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvsyncd.emulator import Emulator
from cvsyncd.emulator.variants import POINTS
from tests.conftest import EMULATOR_KEY, Setup, creates, make_wav

pytestmark = pytest.mark.e2e

FAST = "retry_initial_seconds = 0.2\nretry_max_seconds = 1.5"


@pytest.mark.parametrize("account_shape", POINTS["account-shape"])
def test_running_out_of_credit_pauses_and_resumes(tmp_path: Path, account_shape: str) -> None:
    # 90 s of credit; every edit costs at least 60 s: the second recording is refused
    with Emulator(
        tmp_path / "emulator",
        api_key=EMULATOR_KEY,
        processing_seconds=0.3,
        credits=1.5 / 60,
        vary=3,
        vary_pin={"account-shape": account_shape},
    ) as emulator:
        setup = Setup(tmp_path, emulator.base_url, after="move", extra_daemon=FAST)
        make_wav(setup.inbox / "ep1.wav")
        daemon = setup.daemon()
        try:
            daemon.wait_for_event("job.done", path="ep1.wav")
            make_wav(setup.inbox / "ep2.wav", freq=660)
            paused = daemon.wait_for_event("account.paused")
            assert "no credits left" in paused["reason"]
            status = setup.cli("status", "-c", str(setup.config))
            assert "PAUSED" in status.stdout and "Add credits" in status.stdout
            # a few more account checks (and, without a balance, trials) while still short
            daemon.wait_for(
                lambda: sum(1 for r in emulator.requests() if r["endpoint"] == "account") >= 2,
                what="the account checked again while paused",
            )
            emulator.add_credits(1.0)
            daemon.wait_for_event("job.done", path="ep2.wav", timeout=60)
        finally:
            assert daemon.stop() == 0
        requests = emulator.requests()
    refused = [r for r in requests if r["endpoint"] == "create" and r["status"] == 402]
    assert refused, "the emulator never answered 402"
    assert sorted(r["files"][0].rsplit("/", 1)[-1] for r in creates(emulator)) == [
        "ep1.wav",
        "ep2.wav",
    ]
    assert sorted(j["state"] for j in setup.jobs()) == ["done", "done"]
    assert not (setup.inbox / "failed").exists()
    assert emulator.variants.served[("account-shape", account_shape)] >= 1
