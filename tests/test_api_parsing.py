"""The client's reading of Cleanvoice answers: error bodies, edit statuses, back-off."""

from __future__ import annotations

import pytest

from cvsyncd.api import (
    RUNNING_STATUSES,
    backoff_delay,
    check_transfer_url,
    error_message,
    parse_edit_status,
    parse_retry_after,
)
from cvsyncd.errors import PermanentApiError


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"error": {"code": "E9001", "message": "Too many requests"}},
            ("Too many requests", "E9001"),
        ),
        ({"detail": "Invalid API key"}, ("Invalid API key", None)),
        (
            {"detail": {"error": {"code": "INSUFFICIENT_CREDITS", "message": "No credits"}}},
            ("No credits", "INSUFFICIENT_CREDITS"),
        ),
        ({"detail": {"message": "bad config", "code": "X"}}, ("bad config", "X")),
        ({"message": "Internal error"}, ("Internal error", None)),
        (
            {"detail": [{"loc": ["body", "input"], "msg": "field required"}]},
            ("field required", None),
        ),
        ({}, ("HTTP 500", None)),
        ("<html>Bad gateway</html>", ("<html>Bad gateway</html>", None)),
        (None, ("HTTP 500", None)),
    ],
)
def test_every_documented_error_shape(body: object, expected: tuple[str, str | None]) -> None:
    assert error_message(body, 500) == expected


def test_running_statuses_carry_progress() -> None:
    for status in RUNNING_STATUSES:
        parsed = parse_edit_status(
            {"status": status, "result": {"done": 30, "total": 100, "state": status}}
        )
        assert not parsed.succeeded and not parsed.failed
        assert parsed.percent == 30.0


def test_unknown_id_is_pending_without_result() -> None:
    parsed = parse_edit_status({"status": "PENDING", "result": None, "task_id": "x"})
    assert parsed.status == "PENDING" and parsed.progress is None and parsed.percent is None


@pytest.mark.parametrize("result", [None, {}, {"done": 100, "total": 100}])
def test_success_without_a_result_is_not_done_yet(result: object) -> None:
    parsed = parse_edit_status({"status": "SUCCESS", "result": result})
    assert parsed.status == "SUCCESS" and not parsed.succeeded


def test_success_with_result() -> None:
    result = {
        "video": False,
        "filename": "abc",
        "download_url": "https://x/y.mp3",
        "statistics": {},
    }
    parsed = parse_edit_status({"status": "SUCCESS", "result": result})
    assert parsed.succeeded and parsed.result == result


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"message": "Could not decode audio"}, "Could not decode audio"),
        (None, None),
        ("broken file", "broken file"),
    ],
)
def test_failure_messages(result: object, message: str | None) -> None:
    parsed = parse_edit_status({"status": "FAILURE", "result": result})
    assert parsed.failed and parsed.message == message


def test_backoff_grows_is_capped_and_honours_retry_after() -> None:
    for attempt in range(1, 20):
        delay = backoff_delay(attempt, base=5, cap=900)
        step = min(900, 5 * 2 ** (attempt - 1))
        assert step / 2 <= delay <= step
    assert backoff_delay(1, base=5, retry_after=120) >= 120


def test_retry_after_parsing() -> None:
    assert parse_retry_after("30") == 30
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert parse_retry_after(None) is None


def test_transfers_only_over_https_or_loopback() -> None:
    check_transfer_url("https://bucket.example/a.wav?sig=1")
    check_transfer_url("http://127.0.0.1:8765/storage/a.wav")
    check_transfer_url("http://localhost/storage/a.wav")
    with pytest.raises(PermanentApiError) as info:
        check_transfer_url("http://bucket.example/a.wav?X-Amz-Signature=secret")
    assert "secret" not in str(info.value)
    with pytest.raises(PermanentApiError):
        check_transfer_url("file:///etc/passwd")
