"""Hostile or unlucky answers, from a stand-in server (tests/hostile.py) in front of the
emulator, with the daemon as a subprocess: odd answers to polls, redirects, compressed,
trickled, endless and huge bodies, malformed edit ids. In every case nothing paid for is
lost, nothing is created twice, and what cannot go on says why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cvsyncd.emulator import Emulator
from tests.conftest import Setup, creates, make_wav
from tests.hostile import HostileProxy, Rule

pytestmark = pytest.mark.e2e

EDIT = r"/v2/edits/[^/]+"
RESULTS = r"/storage/results/.+"
FAST = "retry_initial_seconds = 0.2\nretry_max_seconds = 1.5"


def with_cleanvoice(setup: Setup, text: str) -> None:
    """Add settings to the [cleanvoice] section of a test config."""
    config = setup.config.read_text()
    setup.config.write_text(config.replace("[cleanvoice]\n", f"[cleanvoice]\n{text}\n", 1))


def deleted_only_after_downloads(proxy: HostileProxy) -> bool:
    deletes = proxy.entries("DELETE", EDIT)
    downloads = [e for e in proxy.entries("GET", RESULTS) if e.status in (200, 206)]
    return bool(deletes and downloads) and min(d.at for d in deletes) > max(d.at for d in downloads)


def test_odd_answers_to_polls_are_retried_and_the_edit_is_kept(
    tmp_path: Path, emulator: Emulator
) -> None:
    with HostileProxy(emulator.base_url) as proxy:
        proxy.add(
            Rule("GET", EDIT, "status", status=404, body={"detail": "Not Found"}, times=2),
            Rule("GET", EDIT, "status", status=410, body="Gone"),
            Rule("GET", EDIT, "redirect", location="/v2/elsewhere"),
            Rule("GET", EDIT, "status", status=301, body=""),
            Rule("GET", EDIT, "status", status=200, body="<html>not json</html>"),
            Rule("GET", EDIT, "status", status=200, body={"no": "status here"}),
        )
        setup = Setup(tmp_path, proxy.base_url, after="move", extra_daemon=FAST)
        make_wav(setup.inbox / "ep.wav")
        daemon = setup.daemon()
        try:
            daemon.wait_for_event("job.done", path="ep.wav", timeout=60)
        finally:
            assert daemon.stop() == 0
        assert all(rule.hits == rule.times for rule in proxy.rules)  # every odd answer served
        assert not proxy.entries(path="/v2/elsewhere")  # a redirect is never followed
        assert deleted_only_after_downloads(proxy)
    assert len(creates(emulator)) == 1
    assert [j["state"] for j in setup.jobs()] == ["done"]
    assert (setup.outbox / "ep.wav").read_bytes() == (setup.inbox / "done" / "ep.wav").read_bytes()


def test_redirected_transfers_never_carry_the_key(tmp_path: Path, emulator: Emulator) -> None:
    with HostileProxy(emulator.base_url) as proxy:
        proxy.add(
            Rule("PUT", r"/storage/uploads/.+", "redirect"),  # a body cannot be sent twice
            Rule("GET", RESULTS, "redirect"),  # followed: the same URL again
        )
        setup = Setup(tmp_path, proxy.base_url, after="keep", extra_daemon=FAST)
        make_wav(setup.inbox / "ep.wav")
        daemon = setup.daemon()
        try:
            daemon.wait_for_event("job.done", path="ep.wav", timeout=60)
        finally:
            assert daemon.stop() == 0
        storage = proxy.entries(path=r"/storage/.+")
        assert [e.status for e in storage if e.method == "PUT"][:2] == [307, 200]
        assert not any(e.key for e in storage)
    assert len(creates(emulator)) == 1
    assert (setup.outbox / "ep.wav").read_bytes() == (setup.inbox / "ep.wav").read_bytes()


def test_a_compressed_download_arrives_byte_for_byte(tmp_path: Path, emulator: Emulator) -> None:
    with HostileProxy(emulator.base_url) as proxy:
        proxy.add(Rule("GET", RESULTS, "gzip", times=None))
        setup = Setup(tmp_path, proxy.base_url, after="keep", extra_daemon=FAST)
        recording = make_wav(setup.inbox / "ep.wav", seconds=3)
        daemon = setup.daemon()
        try:
            daemon.wait_for_event("job.done", path="ep.wav", timeout=60)
        finally:
            assert daemon.stop() == 0
        gzipped = [e for e in proxy.entries("GET", RESULTS) if e.action == "gzip"]
        assert len(gzipped) == 1  # once, not again and again
    assert (setup.outbox / "ep.wav").read_bytes() == recording.read_bytes()


def test_a_trickled_poll_is_a_timeout_and_a_trickled_create_is_ambiguous(
    tmp_path: Path, emulator: Emulator
) -> None:
    with HostileProxy(emulator.base_url) as proxy:
        proxy.add(
            Rule("GET", EDIT, "trickle", interval=0.5),
            Rule("POST", "/v2/edits", "trickle", interval=0.5, times=None),
        )
        setup = Setup(tmp_path, proxy.base_url, after="keep", extra_daemon=FAST)
        with_cleanvoice(setup, "request_deadline_seconds = 2")
        make_wav(setup.inbox / "ep.wav")
        daemon = setup.daemon()
        try:
            daemon.wait_for_event("job.needs_attention", timeout=60)
            status = setup.cli("status", "-c", str(setup.config)).stdout
            [job] = setup.jobs()
            assert job["state"] == "needs_attention"
            assert "no complete answer from Cleanvoice within 2 s" in job["error"]
            assert "ep.wav" in status and "needs_attention" in status
            # the user checked the dashboard: submit it again, now with honest answers
            proxy.clear()
            assert setup.cli("retry", "-c", str(setup.config), str(job["id"])).returncode == 0
            daemon.wait_for_event("job.done", path="ep.wav", timeout=60)
        finally:
            assert daemon.stop() == 0
    assert len(creates(emulator)) == 2  # the trickled one (it did happen) and the retry


def test_a_trickled_poll_is_retried(tmp_path: Path, emulator: Emulator) -> None:
    with HostileProxy(emulator.base_url) as proxy:
        proxy.add(Rule("GET", EDIT, "trickle", interval=0.5, times=2))
        setup = Setup(tmp_path, proxy.base_url, after="keep", extra_daemon=FAST)
        with_cleanvoice(setup, "request_deadline_seconds = 2")
        make_wav(setup.inbox / "ep.wav")
        daemon = setup.daemon()
        try:
            retried = daemon.wait_for_event("job.retry", path="ep.wav", state="processing")
            assert "within 2 s" in retried["error"]
            daemon.wait_for_event("job.done", path="ep.wav", timeout=60)
        finally:
            assert daemon.stop() == 0
    assert len(creates(emulator)) == 1


@pytest.mark.parametrize(
    ("rule", "setting", "words"),
    [
        (Rule("GET", RESULTS, "endless"), "max_download_gb = 0.001", "more than"),
        (Rule("GET", EDIT, "huge", size=3_000_000), "max_answer_mb = 1", "max_answer_mb"),
    ],
)
def test_past_a_cap_the_job_fails_clearly_and_a_retry_fetches_without_paying_again(
    tmp_path: Path, emulator: Emulator, rule: Rule, setting: str, words: str
) -> None:
    with HostileProxy(emulator.base_url) as proxy:
        proxy.add(rule)
        setup = Setup(tmp_path, proxy.base_url, after="move", extra_daemon=FAST)
        with_cleanvoice(setup, setting)
        make_wav(setup.inbox / "ep.wav")
        daemon = setup.daemon()
        try:
            failed = daemon.wait_for_event("job.failed", path="ep.wav", timeout=60)
            assert words in failed["error"]
            assert not proxy.entries("DELETE", EDIT)  # the paid edit is kept at Cleanvoice
            note = (setup.inbox / "failed" / "ep.wav.error.txt").read_text()
            assert "a retry fetches its results again, it does not pay for it again" in note
            [job] = setup.jobs()
            retried = setup.cli("retry", "-c", str(setup.config), str(job["id"]))
            assert "not submitted (or paid for) again" in retried.stdout, retried.stderr
            daemon.wait_for_event("job.done", path="ep.wav", timeout=60)
        finally:
            assert daemon.stop() == 0
    assert len(creates(emulator)) == 1
    assert (setup.outbox / "ep.wav").read_bytes() == (setup.inbox / "done" / "ep.wav").read_bytes()


@pytest.mark.parametrize("edit_id", ["../../v1/account", "a" * 5000, "9a14 b8fe", ""])
def test_a_malformed_edit_id_is_never_used_and_the_job_waits_for_the_user(
    tmp_path: Path, emulator: Emulator, edit_id: str
) -> None:
    with HostileProxy(emulator.base_url) as proxy:
        proxy.add(Rule("POST", "/v2/edits", "replace", body={"id": edit_id}))
        setup = Setup(tmp_path, proxy.base_url, after="keep", extra_daemon=FAST)
        make_wav(setup.inbox / "ep.wav")
        daemon = setup.daemon()
        try:
            daemon.wait_for_event("job.needs_attention", timeout=60)
        finally:
            assert daemon.stop() == 0
        log = list(proxy.log)
        created = next(i for i, e in enumerate(log) if (e.method, e.path) == ("POST", "/v2/edits"))
        # before the create, the spend guard asks for the balance as the upload starts (in
        # the background); after it, only a malformed id put to use could ask for more
        used = [e for e in log if e.path not in ("/v2/upload", "/v2/edits", "/v1/account")]
        assert all(e.path.startswith("/storage/uploads/") for e in used), used
        assert not [e for e in log[created + 1 :] if e.path == "/v1/account"], log
    [job] = setup.jobs()
    assert job["state"] == "needs_attention" and job["edit_id"] is None
    assert len(job["error"]) < 2000


def test_a_huge_failure_message_is_bounded_everywhere(tmp_path: Path, emulator: Emulator) -> None:
    huge = "Could not process: " + "x" * 3_000_000
    with HostileProxy(emulator.base_url) as proxy:
        failure = {"status": "FAILURE", "result": {"message": huge}}
        proxy.add(Rule("GET", EDIT, "replace", body=failure, times=None))
        setup = Setup(tmp_path, proxy.base_url, after="move", extra_daemon=FAST)
        make_wav(setup.inbox / "ep.wav")
        daemon = setup.daemon()
        try:
            daemon.wait_for_event("job.failed", path="ep.wav", timeout=60)
        finally:
            assert daemon.stop() == 0
    [job] = setup.jobs()
    assert job["error"].startswith("Cleanvoice could not process this recording: Could not")
    assert len(job["error"]) <= 1000
    note = setup.inbox / "failed" / "ep.wav.error.txt"
    assert note.stat().st_size < 3000
    assert max(len(line) for line in daemon.lines) < 5000
    shown = json.loads(setup.cli("show", "-c", str(setup.config), str(job["id"]), "--json").stdout)
    assert all(len(event["message"] or "") <= 1000 for event in shown["history"])
