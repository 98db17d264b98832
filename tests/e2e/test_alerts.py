"""Alerts from a running daemon to a receiver on 127.0.0.1 (``json://``, through Apprise):
what needs a person reaches them, in one message per burst, and a receiver that is down
never slows or fails a job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cvsyncd.emulator import Emulator
from tests.conftest import EMULATOR_KEY, Setup, make_wav, wait_until
from tests.receivers import Receiver

pytestmark = pytest.mark.e2e


def with_alerts(setup: Setup, receiver: Receiver, group_seconds: float, extra: str = "") -> None:
    with setup.config.open("a") as config:
        config.write(
            f'\n{extra}\n[alerts]\nurls = ["{receiver.url}"]\ngroup_seconds = {group_seconds}\n'
        )


@pytest.mark.timeout(180)
def test_three_failures_make_one_message_and_a_down_receiver_slows_no_job(
    tmp_path: Path, canonical_emulator: Emulator, receiver: Receiver
) -> None:
    emulator = canonical_emulator
    receiver.fail = 10**6  # down: every delivery is answered 500
    setup = Setup(tmp_path, emulator.base_url, after="move")
    # the three failures come up to ~10 s apart (the scheduler's pace): one window
    with_alerts(setup, receiver, group_seconds=20)
    for n in (1, 2, 3):
        (setup.inbox / f"broken{n}.wav").write_bytes(b"a text file with a .wav name\n" * 40)
    make_wav(setup.inbox / "good.wav")
    daemon = setup.daemon()
    try:
        for n in (1, 2, 3):
            daemon.wait_for_event("job.failed", path=f"broken{n}.wav")
        daemon.wait_for_event("job.done", path="good.wav")
        daemon.wait_for_event("alert.retry", alert="failed")  # it was refused meanwhile
        assert receiver.messages == []
        states = {j["inputs"][0]: j["state"] for j in setup.jobs()}
        assert states == {
            "broken1.wav": "failed",
            "broken2.wav": "failed",
            "broken3.wav": "failed",
            "good.wav": "done",
        }
        receiver.fail = 0  # back up: the retry goes through
        wait_until(lambda: receiver.messages, "the alert after the receiver came back", 90)
        daemon.wait_for_event("alert.sent", alert="failed")
    finally:
        assert daemon.stop() == 0
    assert len(receiver.messages) == 1, receiver.messages
    [message] = receiver.messages
    assert message["title"].endswith(": 3 recordings failed")
    body = message["message"]
    for n in (1, 2, 3):
        assert f"broken{n}.wav (job " in body
    assert "in folder " in body and "failed/" in body and "cvsyncd retry JOB" in body
    everything = json.dumps(receiver.messages) + daemon.log_text
    assert EMULATOR_KEY not in everything
    assert receiver.url.split("//", 1)[1] not in daemon.log_text  # URLs: the scheme only


@pytest.mark.timeout(180)
def test_a_held_recording_and_a_vanished_inbox_reach_people(
    tmp_path: Path, emulator: Emulator, receiver: Receiver
) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="move")
    # a daily cap far below one second of audio: the recording is held before upload
    with_alerts(setup, receiver, group_seconds=0.5, extra="[budget]\nhours_per_day = 0.0001")
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("daemon.started")
        make_wav(setup.inbox / "ep1.wav", seconds=2.0)
        daemon.wait_for_event("job.held", path="ep1.wav")
        wait_until(lambda: receiver.messages, "the held alert", 30)
        held = receiver.messages[0]
        assert held["title"].endswith(": recording is held before upload")
        assert "ep1.wav (job 1) in folder " in held["message"]
        assert "cvsyncd release JOB" in held["message"]
        setup.inbox.rename(tmp_path / "inbox-unmounted")  # the share went away
        daemon.wait_for_event("inbox.unavailable", timeout=60)
        wait_until(lambda: len(receiver.messages) >= 2, "the unavailable alert", 30)
    finally:
        assert daemon.stop() == 0
    gone = receiver.messages[1]
    assert gone["title"].endswith(": inbox is unavailable")
    assert str(setup.inbox) in gone["message"] and "resumes by itself" in gone["message"]
    assert len(receiver.messages) == 2
    assert not [r for r in emulator.requests() if r.get("endpoint") == "upload"]


@pytest.mark.timeout(180)
def test_a_refused_key_pauses_and_says_so_once(
    tmp_path: Path, emulator: Emulator, receiver: Receiver
) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="move")
    setup.key_file.write_text("cv-wrong-key-0000000000\n")
    with_alerts(setup, receiver, group_seconds=0.5)
    make_wav(setup.inbox / "ep1.wav")
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("account.paused")
        wait_until(lambda: receiver.messages, "the paused alert", 30)
    finally:
        assert daemon.stop() == 0
    [message] = receiver.messages
    assert message["title"].endswith(": account pause: new work stopped")
    assert "Put a working API key in the key file" in message["message"]
    assert "cv-wrong-key-0000000000" not in json.dumps(receiver.messages)
    assert [j["state"] for j in setup.jobs()] == ["queued"]  # nothing failed
