"""The dashboard over real HTTP: the daemon as a subprocess with [web] on a loopback port.

Sessions, CSRF, the login and its throttle, the Host check, the headers of every answer,
/healthz, /metrics, ``cvsyncd health``, and which files a download may serve.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from cvsyncd.emulator import Emulator
from tests.conftest import EMULATOR_KEY, creates, make_wav, wait_until
from tests.e2e.web_helpers import WEB_PASSWORD, answers, csrf_of, web_setup

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def assert_safe_headers(response: httpx.Response) -> None:
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "server" not in response.headers


def test_a_presets_signed_url_is_sent_whole_but_shown_nowhere(
    tmp_path: Path, emulator: Emulator
) -> None:
    """``signed_url`` carries a signature (a credential for the user's bucket): Cleanvoice
    gets it whole, the job's page, `show`, `jobs --json`, the outbox record, the log and
    the state database only ever hold it without its query."""
    signature = "X-Amz-Signature=c4n4ry0f7h3bucket"
    bucket = "https://bucket.example.com/out.mp3"
    preset = f'fillers = true\nsigned_url = "{bucket}?{signature}"'
    setup, url = web_setup(tmp_path, emulator.base_url, after="keep", preset=preset)
    daemon = setup.daemon()
    try:
        make_wav(setup.inbox / "ep.wav")
        daemon.wait_for_event("job.done", path="ep.wav")
        wait_until(lambda: answers(url), "the dashboard")
        page = httpx.get(f"{url}/jobs/1", timeout=10).text
    finally:
        assert daemon.stop() == 0
    [create] = creates(emulator)
    assert create["config"]["signed_url"] == bucket  # sent (the emulator keeps no query)
    shown = {
        "the job's page": page,
        "show": setup.cli("show", "-c", str(setup.config), "1").stdout,
        "show --json": setup.cli("show", "-c", str(setup.config), "1", "--json").stdout,
        "jobs --json": setup.cli("jobs", "-c", str(setup.config), "--json").stdout,
        "the outbox record": (setup.outbox / "ep.cleanvoice.json").read_text(),
        "the daemon's log": daemon.log_text,
    }
    for where, text in shown.items():
        assert "c4n4ry0f7h3bucket" not in text, where
    for stored in (p for p in setup.state.rglob("*") if p.is_file()):  # the database too
        assert b"c4n4ry0f7h3bucket" not in stored.read_bytes(), stored
    assert bucket in shown["show"] and bucket in shown["the outbox record"]


def test_pages_actions_csrf_and_headers_on_loopback(tmp_path: Path, emulator: Emulator) -> None:
    setup, url = web_setup(tmp_path, emulator.base_url)
    daemon = setup.daemon()
    try:
        wait_until(lambda: answers(url), "the dashboard")
        make_wav(setup.inbox / "ep.wav")
        daemon.wait_for_event("job.done", path="ep.wav")
        with httpx.Client(base_url=url, timeout=10) as browser:
            page = browser.get("/")
            assert page.status_code == 200 and "ep.wav" in page.text
            assert_safe_headers(page)
            cookie = page.headers["set-cookie"]
            assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
            for path in ("/jobs", "/jobs/1", "/usage", "/static/app.css", "/static/app.js"):
                answer = browser.get(path)
                assert answer.status_code == 200, path
                assert_safe_headers(answer)
                assert EMULATOR_KEY not in answer.text
                assert "<script>" not in answer.text and "style=" not in answer.text
            token = csrf_of(page.text)
            # a POST without the token, with a wrong one, or without the session: refused
            for form, cookies in (
                ({"folder": ""}, None),
                ({"folder": "", "csrf": token[:-2] + "xx"}, None),
                ({"folder": "", "csrf": token}, {"cvsyncd_session": "forged"}),
            ):
                if cookies is None:
                    refused = browser.post("/actions/pause", data=form)
                else:
                    refused = httpx.post(f"{url}/actions/pause", data=form, cookies=cookies)
                assert refused.status_code == 403
            assert daemon.count("operator.paused") == 0
            assert daemon.count("web.refused") == 2  # the forged session never got that far
            paused = browser.post("/actions/pause", data={"folder": "", "csrf": token})
            assert paused.status_code == 303
            # taken at once: the dashboard wakes the supervisor, no 30 s wait
            daemon.wait_for_event("operator.paused", timeout=5)
            assert "All folders are paused" in browser.get("/").text
            browser.post("/actions/resume", data={"folder": "", "csrf": token})
            daemon.wait_for_event("operator.resumed", timeout=5)
            # another site's name for this address (DNS rebinding) is refused
            rebound = browser.get("/", headers={"Host": f"evil.example:{url.rsplit(':', 1)[1]}"})
            assert rebound.status_code == 421
    finally:
        assert daemon.stop() == 0


def test_login_throttle_and_logout(tmp_path: Path, emulator: Emulator) -> None:
    setup, url = web_setup(tmp_path, emulator.base_url, password=True)
    daemon = setup.daemon()
    try:
        wait_until(lambda: answers(url), "the dashboard")
        with httpx.Client(base_url=url, timeout=10) as browser:
            assert browser.get("/").headers["location"] == "/login"
            assert browser.post("/actions/pause", data={"folder": ""}).status_code == 403
            login = browser.get("/login")
            token = csrf_of(login.text)
            assert browser.post("/login", data={"password": "guess"}).status_code == 403
            wrong = browser.post("/login", data={"password": "guess", "csrf": token})
            assert wrong.status_code == 403 and "wrong password" in wrong.text
            daemon.wait_for_event("web.login_failed", failures=1)
            # the next try waits, even with the right password
            early = browser.post("/login", data={"password": WEB_PASSWORD, "csrf": token})
            assert "try again in" in early.text and "cvsyncd_session" not in early.headers.get(
                "set-cookie", ""
            )

            def logged_in() -> bool:
                tried = browser.post("/login", data={"password": WEB_PASSWORD, "csrf": token})
                return tried.status_code == 303

            wait_until(logged_in, "the throttle to let the right password through", timeout=10)
            daemon.wait_for_event("web.login")
            overview = browser.get("/")
            assert overview.status_code == 200 and WEB_PASSWORD not in overview.text
            assert "Log out" in overview.text
            out = browser.post("/logout", data={"csrf": csrf_of(overview.text)})
            assert out.status_code == 303 and out.headers["location"] == "/login"
            assert browser.get("/").status_code == 303
        assert WEB_PASSWORD not in daemon.log_text
    finally:
        assert daemon.stop() == 0


def test_health_metrics_and_the_health_command(tmp_path: Path, emulator: Emulator) -> None:
    setup, url = web_setup(tmp_path, emulator.base_url)
    daemon = setup.daemon()
    try:
        wait_until(lambda: answers(url), "the dashboard")
        make_wav(setup.inbox / "ep.wav", seconds=2)
        daemon.wait_for_event("job.done", path="ep.wav")
        # the account requests so far: the spend guard's read before the upload (answered
        # long before the job was done, and not due again for minutes)
        asked = [r for r in emulator.requests() if r["endpoint"] == "account"]
        health = httpx.get(f"{url}/healthz")
        assert (health.status_code, health.text) == (200, "ok\n")
        metrics = httpx.get(f"{url}/metrics").text
        assert 'cvsyncd_jobs{state="done"} 1.0' in metrics
        assert re.search(
            r'cvsyncd_api_requests_total\{endpoint="POST /v2/edits",status="\d+"\} 1', metrics
        )
        assert re.search(r'endpoint="GET /v2/edits/\{id\}"', metrics)
        size = (setup.inbox / "done" / "ep.wav").stat().st_size
        assert f"cvsyncd_uploaded_bytes_total {float(size)}" in metrics
        assert 'cvsyncd_folder_available{folder="inbox"} 1.0' in metrics
        assert "cvsyncd_healthy 1.0" in metrics
        assert EMULATOR_KEY not in metrics
        # a scraper alone (nobody opened the overview) keeps the credit balance known: the
        # scrape asked for it in the background, once (a second scrape does not ask again)
        httpx.get(f"{url}/metrics")
        wait_until(
            lambda: (
                len([r for r in emulator.requests() if r["endpoint"] == "account"])
                == len(asked) + 1
            ),
            "the scrape's account request",
        )
        wait_until(lambda: (setup.state / "health.json").exists(), "the health verdict")
        checked = setup.cli("health", "-c", str(setup.config))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert checked.stdout.startswith("ok")
    finally:
        assert daemon.stop() == 0
    after = setup.cli("health", "-c", str(setup.config))
    assert after.returncode == 1 and "no daemon is running" in after.stdout


def test_healthz_says_503_when_the_scheduler_stalls(tmp_path: Path, emulator: Emulator) -> None:
    setup, url = web_setup(tmp_path, emulator.base_url)
    notify = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify))
    daemon = setup.daemon(
        env={
            "NOTIFY_SOCKET": str(notify),
            "WATCHDOG_USEC": "1000000",  # stalled after 1 s without a turn
            "CVSYNCD_FAILPOINTS": "scheduler.stall",
        }
    )
    try:
        wait_until(lambda: answers(url), "the dashboard")
        wait_until(lambda: httpx.get(f"{url}/healthz").status_code == 503, "/healthz to say 503")
        assert "scheduler" in httpx.get(f"{url}/healthz").text
        checked = setup.cli("health", "-c", str(setup.config))
        assert checked.returncode == 1 and "scheduler" in checked.stdout
    finally:
        daemon.stop()
        listener.close()


def test_downloads_serve_only_the_jobs_own_outputs(tmp_path: Path, emulator: Emulator) -> None:
    setup, url = web_setup(tmp_path, emulator.base_url)
    daemon = setup.daemon()
    try:
        wait_until(lambda: answers(url), "the dashboard")
        make_wav(setup.inbox / "ep.wav")
        daemon.wait_for_event("job.done", path="ep.wav")
        with httpx.Client(base_url=url, timeout=10) as browser:
            page = browser.get("/jobs/1").text
            links = re.findall(r'href="(/jobs/1/outputs/\d+)"', page)
            assert links, page
            first = browser.get(links[0])
            assert first.status_code == 200
            assert first.headers["content-disposition"].startswith("attachment;")
            name = re.search(r'filename="([^"]+)"', first.headers["content-disposition"])
            assert name is not None
            assert first.content == (setup.outbox / name.group(1)).read_bytes()
            assert browser.get("/jobs/1/outputs/99").status_code == 404
            assert browser.get("/jobs/1/outputs/..%2f..%2fapi_key").status_code == 404
            assert browser.get("/jobs/1/outputs/-1").status_code == 404
            # an output replaced by a link out of the outbox is not followed
            target = setup.outbox / name.group(1)
            target.unlink()
            target.symlink_to(setup.key_file)
            refused = browser.get(links[0])
            assert refused.status_code == 404 and EMULATOR_KEY not in refused.text
    finally:
        assert daemon.stop() == 0


def test_a_port_in_use_stops_the_start_naming_the_key(tmp_path: Path, emulator: Emulator) -> None:
    setup, url = web_setup(tmp_path, emulator.base_url)
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_server((host, int(port))):
        run = subprocess.run(
            [sys.executable, "-m", "cvsyncd", "run", "-c", str(setup.config)],
            capture_output=True,
            text=True,
            timeout=60,
            env=setup.env(),
            cwd=setup.root,
        )
    assert run.returncode == 1
    assert "web.listen" in run.stderr and str(setup.config) in run.stderr
    assert "Address already in use" in run.stderr or "in use" in run.stderr


def test_ipv6_loopback_and_a_refused_open_listen(tmp_path: Path, emulator: Emulator) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("::1 cannot be bound here")
    setup, url = web_setup(tmp_path, emulator.base_url, host="::1")
    daemon = setup.daemon()
    try:
        wait_until(lambda: answers(url), "the dashboard on [::1]")
        assert httpx.get(f"{url}/").status_code == 200
    finally:
        assert daemon.stop() == 0
    text = setup.config.read_text().replace(url.removeprefix("http://"), "0.0.0.0:8750")
    setup.config.write_text(text)
    checked = setup.cli("check", "-c", str(setup.config))
    assert checked.returncode == 2 and "web.password_file" in checked.stderr
    run = setup.cli("run", "-c", str(setup.config))
    assert run.returncode == 2 and "needs a password" in run.stderr


def test_held_jobs_show_why_and_are_released_like_the_command(
    tmp_path: Path, emulator: Emulator
) -> None:
    setup, url = web_setup(tmp_path, emulator.base_url, extra_folder='existing = "hold"')
    make_wav(setup.inbox / "old.wav")  # there before the first start: a backlog, held
    daemon = setup.daemon()
    try:
        held = daemon.wait_for_event("job.held", path="old.wav")
        wait_until(lambda: answers(url), "the dashboard")
        with httpx.Client(base_url=url, timeout=10) as browser:
            page = browser.get("/")
            row = re.search(rf'<tr data-job="{held["job"]}">(.*?)</tr>', page.text, re.S)
            assert row is not None and "Release" in row.group(1)
            assert "already in the inbox" in row.group(1)  # the spend guard's own words
            token = csrf_of(page.text)
            refused = browser.post("/actions/release", data={"job": str(held["job"])})
            assert refused.status_code == 403
            released = browser.post(
                "/actions/release", data={"job": str(held["job"]), "csrf": token}
            )
            assert released.status_code == 303
            daemon.wait_for_event("job.done", path="old.wav")
            assert "released by cvsyncd release" in browser.get(f"/jobs/{held['job']}").text
    finally:
        assert daemon.stop() == 0
