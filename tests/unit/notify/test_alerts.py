"""Alerts through Apprise to a real receiver on 127.0.0.1 (``json://``): grouping, retries,
no secrets, and never in a job's way."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from cvsyncd.config.model import AlertSettings
from cvsyncd.notify.alerts import (
    ADVICE,
    Alert,
    Alerter,
    apprise_send,
    check_urls,
    compose,
    shown_url,
)
from cvsyncd.redact import register_secret
from tests.conftest import wait_until
from tests.receivers import Receiver


def settings(
    *urls: str, group: float = 0.2, events: tuple[str, ...] | None = None
) -> AlertSettings:
    if events is None:
        return AlertSettings(urls=urls, group_seconds=group)
    return AlertSettings(urls=urls, events=events, group_seconds=group)


def failed(n: int, error: str = "it is a WAV file without audio data") -> Alert:
    return Alert("failed", f"show/ep{n}.wav", "podcast", error, n)


def test_apprise_delivers_a_message_to_a_local_json_receiver(receiver: Receiver) -> None:
    sent, detail = apprise_send(receiver.url, "cvsyncd: a title", "a body\nsecond line")
    assert sent, detail
    [message] = receiver.messages
    assert message["title"] == "cvsyncd: a title"
    assert message["message"] == "a body\nsecond line"


def test_a_receiver_that_refuses_is_reported_without_the_url(receiver: Receiver) -> None:
    receiver.fail = 1
    sent, detail = apprise_send(receiver.url, "t", "b")
    assert not sent and detail
    assert "/cvsyncd" not in detail  # the URL's path (often a token) is not repeated


@pytest.mark.timeout(60)
def test_a_burst_of_forty_failures_is_one_message(receiver: Receiver) -> None:
    async def main() -> None:
        alerter = Alerter(settings(receiver.url, group=3.0), host="nas1")
        started = time.monotonic()
        for n in range(1, 41):
            alerter.post(failed(n))
            # they trickle in, as failures do: 0.2 s in all, well inside the 3 s window
            # that starts with the first (the one-message assertion holds for that window)
            await asyncio.sleep(0.005)
        # checked, not hoped: on a machine so loaded that the trickle outlasted the window,
        # two messages would be right, and this says so instead of the assertion below
        assert time.monotonic() - started < 3.0, "the trickle outlasted the grouping window"
        await asyncio.to_thread(wait_until, lambda: receiver.messages, "the message", 30)
        await alerter.drain(5)

    asyncio.run(main())
    [message] = receiver.messages
    assert message["title"] == "cvsyncd on nas1: 40 recordings failed"
    body = message["message"]
    assert "• show/ep1.wav (job 1) in folder podcast: it is a WAV file without audio data" in body
    assert "show/ep10.wav" in body and "show/ep11.wav" not in body  # ten are named
    assert "… and 30 more" in body
    assert body.endswith(ADVICE["failed"])


@pytest.mark.timeout(60)
def test_kinds_are_grouped_apart_and_only_the_chosen_events_are_sent(receiver: Receiver) -> None:
    async def main() -> None:
        alerter = Alerter(
            settings(receiver.url, events=("failed", "paused", "unavailable")), host=""
        )
        alerter.post(failed(1))
        alerter.post(Alert("held", "ep2.wav", "podcast", "the daily cap of 3 h is reached", 2))
        alerter.post(Alert("paused", "", "", "the API key was refused (HTTP 401)"))
        await asyncio.to_thread(wait_until, lambda: len(receiver.messages) >= 2, "2 messages")
        await alerter.drain(5)

    asyncio.run(main())
    titles = sorted(m["title"] for m in receiver.messages)
    assert titles == ["cvsyncd: account pause: new work stopped", "cvsyncd: recording failed"]
    paused = next(m for m in receiver.messages if "pause" in m["title"])
    assert "the API key was refused (HTTP 401)" in paused["message"]
    assert "Put a working API key in the key file or add credit" in paused["message"]


@pytest.mark.timeout(60)
def test_the_shared_store_away_is_said_with_what_to_check(receiver: Receiver) -> None:
    async def main() -> None:
        alerter = Alerter(settings(receiver.url, group=0.0), host="")
        alerter.post(Alert("store", "", "", "the shared store postgresql://db/x does not answer"))
        await asyncio.to_thread(wait_until, lambda: receiver.messages, "the message")
        await alerter.drain(5)

    asyncio.run(main())
    [message] = receiver.messages
    assert message["title"] == "cvsyncd: shared store does not answer"
    assert "postgresql://db/x does not answer" in message["message"]
    assert message["message"].endswith(ADVICE["store"])


@pytest.mark.timeout(60)
def test_a_failed_delivery_is_retried_until_it_goes(receiver: Receiver) -> None:
    receiver.fail = 2

    async def main() -> None:
        alerter = Alerter(settings(receiver.url, group=0.0), backoff=0.05, host="")
        alerter.post(failed(7))
        await asyncio.to_thread(wait_until, lambda: receiver.messages, "the third attempt")
        await alerter.drain(5)

    asyncio.run(main())
    assert receiver.requests == 3
    assert len(receiver.messages) == 1


@pytest.mark.timeout(60)
def test_a_stuck_receiver_never_holds_up_the_loop(receiver: Receiver) -> None:
    """post() returns at once and the event loop (where every job's steps run) keeps
    turning while the receiver holds its answer."""
    receiver.release.clear()
    ticks: list[float] = []

    async def main() -> float:
        alerter = Alerter(settings(receiver.url, group=0.0), backoff=0.05, host="")
        started = time.monotonic()
        for n in range(200):
            alerter.post(failed(n))
        posting = time.monotonic() - started
        await asyncio.to_thread(wait_until, lambda: receiver.waiting, "the receiver to hold it")
        for _ in range(20):  # the loop turns while the alert is stuck
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)
        assert receiver.waiting == 1 and not receiver.messages
        receiver.release.set()
        await asyncio.to_thread(wait_until, lambda: receiver.messages, "the message")
        await alerter.drain(5)
        return posting

    posting = asyncio.run(main())
    assert posting < 0.5  # 200 posts: no network on the way
    assert len(ticks) == 20 and ticks[-1] - ticks[0] < 2.0
    assert len(receiver.messages) == 1


@pytest.mark.timeout(60)
def test_no_secret_reaches_a_message(receiver: Receiver) -> None:
    register_secret("cv-canary-key-5d1e2f")
    signed = "https://storage.example/up/ep.wav?X-Amz-Signature=canarysig0042&X-Amz-Expires=60"

    async def main() -> None:
        alerter = Alerter(settings(receiver.url, group=0.0), host="")
        alerter.post(failed(1, f"PUT {signed} failed with key cv-canary-key-5d1e2f"))
        await asyncio.to_thread(wait_until, lambda: receiver.messages, "the message")
        await alerter.drain(5)

    asyncio.run(main())
    text = json.dumps(receiver.messages)
    assert "cv-canary-key-5d1e2f" not in text and "canarysig0042" not in text
    assert "https://storage.example/up/ep.wav" in text  # what failed is still said


@pytest.mark.timeout(60)
def test_drain_sends_what_is_gathering_at_once(receiver: Receiver) -> None:
    async def main() -> None:
        alerter = Alerter(settings(receiver.url, group=3600), host="")
        alerter.post(Alert("unavailable", "podcast", "podcast", "/mnt/share/inbox: not mounted"))
        await alerter.drain(10)

    asyncio.run(main())
    [message] = receiver.messages
    assert message["title"] == "cvsyncd: inbox is unavailable"
    assert "folder podcast: /mnt/share/inbox: not mounted" in message["message"]


def test_without_urls_nothing_is_gathered() -> None:
    async def main() -> Alerter:
        alerter = Alerter(AlertSettings(), send=lambda *a: (True, ""), host="")
        alerter.post(failed(1))
        return alerter

    alerter = asyncio.run(main())
    assert not alerter.enabled and alerter._groups == {}


def test_a_post_outside_an_event_loop_is_dropped_quietly() -> None:
    sent: list[str] = []

    def send(url: str, title: str, body: str) -> tuple[bool, str]:
        sent.append(title)
        return True, ""

    alerter = Alerter(settings("json://127.0.0.1:9/x"), send=send)
    alerter.post(failed(1))  # e.g. a command's store action, with no loop running
    assert alerter._groups == {} and sent == []


def test_compose_names_the_recording_the_folder_and_what_to_do() -> None:
    title, body = compose(
        "needs_attention",
        [Alert("needs_attention", "ep3.wav", "interviews", "no answer to the create-edit", 3)],
    )
    assert title == "cvsyncd: recording needs you"
    assert body.startswith("• ep3.wav (job 3) in folder interviews: no answer to the create-edit")
    assert "cvsyncd retry JOB" in body


def test_urls_are_checked_and_shown_by_their_scheme_only() -> None:
    assert check_urls(["json://127.0.0.1:9/x", "ntfy://my-topic"]) == []
    [problem] = check_urls(["json://127.0.0.1:9/x", "nosuch://secret-token-1234"])
    assert "URL number 2 (nosuch://…)" in problem
    assert "secret-token-1234" not in problem
    assert shown_url("tgram://123456:ABCDEF/987") == "tgram://…"
