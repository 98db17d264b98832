"""The client's reading of Cleanvoice answers: error bodies, edit statuses, back-off."""

from __future__ import annotations

import pytest

from cvsyncd.cleanvoice.answers import account_balance, balance_unit, says_insufficient_credits
from cvsyncd.cleanvoice.client import (
    RUNNING_STATUSES,
    check_transfer_url,
    error_message,
    parse_edit_status,
    parse_retry_after,
)
from cvsyncd.errors import PermanentApiError
from cvsyncd.retry import backoff_delay


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
        # the flat style, a bare string under "error", a code without words
        ({"message": "Bad input", "code": "E1"}, ("Bad input", "E1")),
        ({"error": "Invalid file"}, ("Invalid file", None)),
        ({"error": {"code": "UPLOAD_NOT_FOUND"}}, ("HTTP 500", "UPLOAD_NOT_FOUND")),
        # plain text as it is; an HTML page by its title, never its markup
        ("Service down for maintenance\n", ("Service down for maintenance", None)),
        (
            "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            ("HTTP 500 (502 Bad Gateway)", None),
        ),
        ("<html>Bad gateway</html>", ("HTTP 500", None)),
        (None, ("HTTP 500", None)),
        ([{"message": "a list body"}], ("HTTP 500", None)),
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
        ({}, None),
        ("broken file", "broken file"),
        (
            {"error": {"code": "PROCESSING_FAILED", "message": "Audio processing failed"}},
            "Audio processing failed (PROCESSING_FAILED)",
        ),
        ({"detail": "The file has no audio track"}, "The file has no audio track"),
        ({"message": "Too short", "code": "DURATION"}, "Too short (DURATION)"),
        ({"state": "FAILURE"}, None),
        ({"job_name": "transcode"}, "transcode"),
    ],
)
def test_failure_messages(result: object, message: str | None) -> None:
    parsed = parse_edit_status({"status": "FAILURE", "result": result})
    assert parsed.failed and parsed.message == message
    assert "{" not in (parsed.message or "")  # never a Python repr of a dict


@pytest.mark.parametrize(
    "body",
    [
        {"status": "FAILURE", "error": {"code": "E7", "message": "Unreadable input"}},
        {"status": "FAILURE", "result": None, "message": "Unreadable input"},
        {"status": "FAILURE", "detail": "Unreadable input"},
    ],
)
def test_a_failure_reason_beside_the_result_is_found(body: dict[str, object]) -> None:
    assert (parse_edit_status(body).message or "").startswith("Unreadable input")


def test_a_huge_failure_message_is_bounded_and_one_line() -> None:
    parsed = parse_edit_status({"status": "FAILURE", "result": {"message": "x\n\x00" * 100_000}})
    assert parsed.message is not None and len(parsed.message) <= 500
    assert "\n" not in parsed.message and "\x00" not in parsed.message


@pytest.mark.parametrize(
    ("status", "code", "message", "credits"),
    [
        (402, None, "Payment Required", True),
        (402, None, "", True),
        (400, "INSUFFICIENT_CREDITS", "Not enough credits for processing", True),
        (403, None, "Insufficient credits: this edit needs 61 minutes", True),
        (422, None, "You are out of credits", True),
        (403, None, "This key may not do that", False),
        (400, "BAD_REQUEST", "filename is required", False),
    ],
)
def test_insufficient_credits_is_recognised_by_status_code_or_words(
    status: int, code: str | None, message: str, credits: bool
) -> None:
    assert says_insufficient_credits(status, code, message) is credits


@pytest.mark.parametrize(
    ("body", "balance", "unit"),
    [
        ({"credit": {"total": 12.5, "subscription": 10, "payg": 2.5}}, 12.5, "credits"),
        ({"credit": {"total": 3}, "meta": {"credit_unit": "hours"}}, 3.0, "hours"),
        ({"credits_remaining": 40, "user": "ana@example.com", "account": {}}, 40.0, "credits"),
        ({"account": {"credits_remaining": "7"}}, 7.0, "credits"),
        ({"usage": {"hours_remaining": 74.5}, "email": "u@example.com"}, 74.5, "hours"),
        ({"user": {"email": "ana@example.com"}}, None, "credits"),
        ({"credit": [], "credits_remaining": None}, None, "credits"),
        ({"credit": {"total": True}}, None, "credits"),
        ({"credit": {"total": float("nan")}}, None, "credits"),
    ],
)
def test_the_balance_is_read_from_every_account_shape(
    body: dict[str, object], balance: float | None, unit: str
) -> None:
    assert account_balance(body) == balance
    assert balance_unit(body) == unit


def test_backoff_grows_is_capped_and_honours_retry_after() -> None:
    for attempt in range(1, 20):
        delay = backoff_delay(attempt, base=5, cap=900)
        step = min(900, 5 * 2 ** (attempt - 1))
        assert step / 2 <= delay <= step
    assert backoff_delay(1, base=5, retry_after=120) >= 120


def test_retry_after_parsing() -> None:
    """Both forms of RFC 9110 (seconds, an HTTP date), read the same for every caller."""
    assert parse_retry_after("30") == 30
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("-4") == 0
    now = 1_445_412_480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now - 90) == 90
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now + 90) == 0  # past: now
    for unreadable in (None, "", "soon", "inf", "nan", "Wed, 21 Oct 2015 07:28:00"):
        assert parse_retry_after(unreadable) is None, unreadable


def test_transfers_only_over_https_or_loopback() -> None:
    check_transfer_url("https://bucket.example/a.wav?sig=1")
    check_transfer_url("http://127.0.0.1:8765/storage/a.wav")
    check_transfer_url("http://localhost/storage/a.wav")
    with pytest.raises(PermanentApiError) as info:
        check_transfer_url("http://bucket.example/a.wav?X-Amz-Signature=secret")
    assert "secret" not in str(info.value)
    with pytest.raises(PermanentApiError):
        check_transfer_url("file:///etc/passwd")
