"""The dashboard in a real browser: Playwright driving the system's Chromium (Debian's
``chromium`` package; no browser is downloaded) against the daemon as a subprocess.

A recording dropped into the inbox reaches done on the overview without a reload (the
live parts), a failed job is retried with a click, a folder is paused and resumed, a user
logs in and out, and a POST without the CSRF token is refused. (``bench/screenshot.py``
makes docs/dashboard.png the same way.)
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cvsyncd.emulator import Emulator
from tests.conftest import make_wav, wait_until
from tests.e2e.web_helpers import WEB_PASSWORD, answers, web_setup

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# without the background-networking switches Chromium's own connections to the internet
# fail en masse on a machine without one, and slow everything down
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed: pip install 'cvsyncd[browser]'"
    )
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def test_a_recording_reaches_done_on_the_overview(
    tmp_path: Path, emulator: Emulator, page: Page
) -> None:
    setup, url = web_setup(tmp_path, emulator.base_url)
    daemon = setup.daemon()
    try:
        wait_until(lambda: answers(url), "the dashboard")
        page.goto(url)
        assert page.locator("h1").inner_text() == "Overview"
        make_wav(setup.inbox / "interview.wav", seconds=2)
        # no reload: app.js puts the fresh parts in place
        row = page.locator('[data-live="recent"] tr[data-job="1"]')
        row.locator(".state-done").wait_for()
        assert "interview.wav" in row.inner_text()
        assert (
            page.locator('[data-live="counts"]').inner_text().replace("\n", " ").find("done") >= 0
        )
        page.click('[data-live="recent"] tr[data-job="1"] a')
        assert page.locator("h1").inner_text() == "Job 1: interview.wav"
        assert page.locator("h2", has_text="Outputs").count() == 1
        assert page.locator('a[href^="/jobs/1/outputs/"]').count() >= 1
    finally:
        assert daemon.stop() == 0


def test_a_failed_job_is_retried_with_a_click(
    tmp_path: Path, emulator: Emulator, page: Page
) -> None:
    setup, url = web_setup(tmp_path, emulator.base_url)
    daemon = setup.daemon()
    try:
        wait_until(lambda: answers(url), "the dashboard")
        (setup.inbox / "notes.wav").write_bytes(b"this is not a recording at all" * 10)
        failed = daemon.wait_for_event("job.failed", path="notes.wav")
        page.goto(url)
        row = page.locator(f'[data-live="need-you"] tr[data-job="{failed["job"]}"]')
        assert "failed" in row.inner_text()
        row.locator('button[data-action="retry"]').click()
        page.locator(".flash", has_text="is queued again").wait_for()
        # the very retry of `cvsyncd retry`: queued again, and (still not media) failed again
        daemon.wait_for(lambda: daemon.count("job.failed", path="notes.wav") == 2, what="2nd fail")
        page.goto(f"{url}/jobs/{failed['job']}")
        assert page.locator("text=queued again by cvsyncd retry").count() == 1
    finally:
        assert daemon.stop() == 0


def test_a_folder_is_paused_and_resumed(tmp_path: Path, emulator: Emulator, page: Page) -> None:
    setup, url = web_setup(tmp_path, emulator.base_url)
    daemon = setup.daemon()
    try:
        wait_until(lambda: answers(url), "the dashboard")
        page.goto(url)
        folder = page.locator('[data-live="folders"] tr[data-folder="inbox"]')
        folder.locator('button[data-action="pause"]').click()
        page.locator(".flash", has_text="no new uploads or submissions").wait_for()
        assert "paused" in folder.locator(".state").inner_text()
        daemon.wait_for_event("operator.paused", timeout=5)
        make_wav(setup.inbox / "held.wav")
        daemon.wait_for_event("job.queued", path="held.wav")
        daemon.stays(
            lambda: daemon.count("job.uploading", path="held.wav") == 0,
            2,
            "a job of a folder that is not paused starts uploading within a scheduler turn",
        )
        folder.locator('button[data-action="resume"]').click()
        page.locator(".flash", has_text="new work resumes").wait_for()
        assert "watching" in folder.locator(".state").inner_text()
        daemon.wait_for_event("job.done", path="held.wav")
    finally:
        assert daemon.stop() == 0


def test_log_in_out_and_a_post_without_its_token(
    tmp_path: Path, emulator: Emulator, page: Page
) -> None:
    setup, url = web_setup(tmp_path, emulator.base_url, password=True)
    daemon = setup.daemon()
    try:
        wait_until(lambda: answers(url), "the dashboard")
        page.goto(url)
        assert page.url.endswith("/login")
        page.fill('input[name="password"]', WEB_PASSWORD)
        page.click('button[type="submit"]')
        page.locator("h1", has_text="Overview").wait_for()
        cookie = next(c for c in page.context.cookies() if c["name"] == "cvsyncd_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        # a script of the page itself, with the session, but without the form's token
        status = page.evaluate(
            """() => fetch('/actions/pause', {method: 'POST',
                 body: new URLSearchParams({folder: ''})}).then(r => r.status)"""
        )
        assert status == 403
        assert daemon.count("operator.paused") == 0
        page.click("text=Log out")
        page.locator("h1", has_text="Log in").wait_for()
        page.goto(f"{url}/jobs")
        assert page.url.endswith("/login")
    finally:
        assert daemon.stop() == 0
