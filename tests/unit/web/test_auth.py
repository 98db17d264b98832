"""The dashboard's guards, each on its own: sessions, the login throttle, the Host check,
where an action may send the browser back to."""

from __future__ import annotations

import pytest

from cvsyncd.web.auth import (
    MAX_SESSIONS,
    SESSION_IDLE_SECONDS,
    THROTTLE_CAP,
    Sessions,
    Throttle,
    host_ok,
    safe_next,
)


def test_sessions_are_random_expire_and_check_their_csrf_token() -> None:
    sessions = Sessions("correct-horse")
    a, b = sessions.new(logged_in=False), sessions.new(logged_in=True)
    assert a.token != b.token and a.csrf != b.csrf and len(a.token) >= 43
    assert not a.logged_in and b.logged_in
    assert sessions.get(a.token) is a
    assert a.csrf_ok(a.csrf) and not a.csrf_ok(b.csrf) and not a.csrf_ok("") and not a.csrf_ok(None)
    assert sessions.get(a.token, now=a.seen + SESSION_IDLE_SECONDS + 1) is None
    assert sessions.get(a.token) is None  # gone for good
    sessions.drop(b)
    assert sessions.get(b.token) is None


def test_a_flood_of_sessions_not_logged_in_does_not_log_anyone_out() -> None:
    sessions = Sessions("correct-horse")
    user = sessions.new(logged_in=True)  # the oldest of all
    first_visit = sessions.new(logged_in=False)
    for _ in range(3 * MAX_SESSIONS):
        sessions.new(logged_in=False)
    assert sessions.get(user.token) is user
    assert sessions.get(first_visit.token) is None  # visits that never logged in went


def test_without_a_password_every_session_is_in_and_the_password_is_not_asked() -> None:
    sessions = Sessions(None)
    assert not sessions.needs_login and sessions.new(logged_in=False).logged_in
    assert Sessions("correct-horse").password_ok(" correct-horse\n")
    assert not Sessions("correct-horse").password_ok("correct-hors")


def test_failed_logins_wait_longer_each_time_up_to_a_cap() -> None:
    throttle = Throttle()
    assert throttle.wait_left("10.0.0.1", now=100.0) == 0
    assert throttle.failed("10.0.0.1", now=100.0) == 1
    assert throttle.wait_left("10.0.0.1", now=100.5) == pytest.approx(0.5)
    assert throttle.wait_left("10.0.0.2", now=100.5) == 0  # per address
    throttle.failed("10.0.0.1", now=101.0)
    assert throttle.wait_left("10.0.0.1", now=101.0) == pytest.approx(2.0)
    for _ in range(20):
        throttle.failed("10.0.0.1", now=200.0)
    assert throttle.wait_left("10.0.0.1", now=200.0) == THROTTLE_CAP
    throttle.succeeded("10.0.0.1")
    assert throttle.wait_left("10.0.0.1", now=200.0) == 0


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("127.0.0.1:8750", True),
        ("localhost:8750", True),
        ("[::1]:8750", True),
        ("127.0.0.1", True),
        ("evil.example:8750", False),
        ("192.168.1.10:8750", False),
        ("", False),
        (None, False),
    ],
)
def test_on_loopback_the_host_must_be_this_machine(host: str | None, ok: bool) -> None:
    assert host_ok(host, listening_on_loopback=True) is ok
    assert host_ok(host, listening_on_loopback=False)  # the password guards it there


@pytest.mark.parametrize(
    ("target", "back"),
    [
        ("/jobs/3", "/jobs/3"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_an_action_sends_back_only_to_a_page_of_this_site(target: str | None, back: str) -> None:
    assert safe_next(target) == back
