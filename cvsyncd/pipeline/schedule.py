"""When to ask Cleanvoice about an edit: adaptive polling from the recording's duration.

The docs say processing takes about 30 s for a 2 to 3 minute clip and 5 to 10 minutes for an
hour: ``expected_processing_ratio`` (0.125 s per second of audio) models that. The first
poll comes at 80 % of the expected time, never before ``poll_initial_seconds``; then the
interval starts at a tenth of the expected time (at least twice ``poll_min_seconds``, the
docs' "every 10 s") and grows by half each time up to ``poll_max_seconds``. A one-hour
recording costs three or four polls, not the SDKs' dozens; no poll of one edit comes
sooner than ``poll_min_seconds`` after the last. There is no give-up deadline short of the
edit's retention (7 days): an edit far beyond its expected time is reported as overdue.
"""

from __future__ import annotations

from cvsyncd.config import Config
from cvsyncd.jobs import Job

GROWTH = 1.5


def expected_seconds(config: Config, duration: float | None) -> float | None:
    """How long Cleanvoice should take for ``duration`` seconds of audio (None: unknown)."""
    if not duration:
        return None
    return config.cleanvoice.expected_processing_ratio * duration


def first_poll_delay(config: Config, duration: float | None) -> float:
    """Seconds from creating the edit to its first status poll."""
    daemon = config.daemon
    expected = expected_seconds(config, duration)
    wanted = 0.8 * expected if expected else daemon.poll_initial_seconds
    return max(daemon.poll_initial_seconds, daemon.poll_min_seconds, wanted)


def next_poll_delay(
    config: Config, polls: int, duration: float | None, *, result_pending: bool = False
) -> float:
    """Seconds until the next poll, after ``polls`` polls that found the edit running."""
    daemon = config.daemon
    if result_pending:  # SUCCESS without its result: it is about to arrive
        return daemon.poll_min_seconds
    expected = expected_seconds(config, duration)
    base = (
        max(0.1 * expected, 2 * daemon.poll_min_seconds)
        if expected
        else daemon.poll_initial_seconds
    )
    wanted = base * GROWTH ** max(polls - 1, 0)
    return max(daemon.poll_min_seconds, min(daemon.poll_max_seconds, wanted))


def is_overdue(config: Config, duration: float | None, elapsed: float) -> bool:
    """Whether an edit running for ``elapsed`` seconds is far beyond its expected time."""
    expected = expected_seconds(config, duration)
    if expected is None:
        return elapsed > 2 * 3600
    return elapsed > max(3 * expected, expected + 900)


def has_expired(config: Config, submitted_at: float | None, now: float) -> bool:
    """Whether Cleanvoice has deleted the edit's files by now (its retention passed)."""
    return submitted_at is not None and now - submitted_at > config.cleanvoice.retention_seconds


def expired_message(config: Config, job: Job) -> str:
    """Why a job whose edit's retention ran out cannot go on, and what to do."""
    return (
        f"the edit {job.edit_id} expired at Cleanvoice before its results could be fetched "
        "(Cleanvoice keeps files for 7 days); the recording must be submitted again: "
        f"cvsyncd retry -c {config.path} {job.id}"
    )
