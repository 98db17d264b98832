"""The spend guard's arithmetic, on a real SQLite store and real folders: the local
calendar, the daily and monthly caps (all folders and one folder), what counts as spent,
unknown durations, released jobs, a raised cap, and the backlog decision of each
``existing`` mode. The clock is passed in: no test waits for midnight."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from cvsyncd.cleanvoice.client import client_for
from cvsyncd.config import BudgetSettings, Config, DaemonSettings, Folder
from cvsyncd.config.model import CleanvoiceSettings
from cvsyncd.jobs import InputFile, Job, JobState, Store
from cvsyncd.pipeline.backlog import Backlogs, measure
from cvsyncd.pipeline.guard import SpendGuard
from cvsyncd.pipeline.runtime import Runtime
from cvsyncd.pipeline.spend import (
    NEVER,
    day_bounds,
    held_summary,
    month_bounds,
    release_facts,
)
from cvsyncd.pipeline.usage import usage_report
from tests.conftest import make_wav

S = JobState
HOUR = 3600.0


@pytest.fixture(autouse=True)
def berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A local time zone with summer time, so that "local calendar" means something."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def local(text: str) -> float:
    """A local time as "YYYY-MM-DD HH:MM" → timestamp."""
    return time.mktime(time.strptime(text, "%Y-%m-%d %H:%M"))


def make_config(tmp_path: Path, budget: BudgetSettings, **folder: Any) -> Config:
    inbox = tmp_path / "inbox"
    inbox.mkdir(exist_ok=True)
    shows = Folder(
        inbox=inbox,
        outbox=tmp_path / "outbox",
        preset=None,
        options={"fillers": True},
        after="keep",
        done_dir=inbox / "done",
        failed_dir=inbox / "failed",
        **folder,
    )
    return Config(
        path=tmp_path / "cvsyncd.toml",
        cleanvoice=CleanvoiceSettings(base_url="http://127.0.0.1:9/v2"),
        daemon=DaemonSettings(state_dir=tmp_path / "state"),
        folders=(shows,),
        budget=budget,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "state")
    try:
        yield opened
    finally:
        opened.close()


def guard_for(config: Config, store: Store) -> SpendGuard:
    return SpendGuard(Runtime(config, store, client_for(config.cleanvoice, "k")))


def add_job(
    store: Store,
    folder: Folder,
    name: str,
    seconds: float | None,
    *,
    spent_at: float | None = None,
    state: JobState = S.QUEUED,
) -> Job:
    """A job of ``seconds`` of audio; with ``spent_at``, one that passed the guard then and
    went on to ``state``."""
    facts: dict[str, Any] = {"duration": seconds}
    job = store.create_job(
        folder.key, name, [InputFile(name, 1, 1, name)], {"fillers": True}, facts=facts
    )
    assert job is not None
    if spent_at is None:
        return job
    hours = (seconds or HOUR) / HOUR
    facts["spend"] = {"at": spent_at, "hours": hours}
    job = store.transition(job.id, S.QUEUED, S.UPLOADING, facts=facts)
    path = {
        S.UPLOADING: [],
        S.UPLOADED: [S.UPLOADED],
        S.DONE: [S.UPLOADED, S.SUBMITTING, S.PROCESSING, S.FETCHING, S.WRITING, S.DISPOSING],
        S.FAILED: [S.FAILED],
    }[state]
    for nxt in path:
        job = store.transition(job.id, job.state, nxt)
    if state is S.DONE:
        job = store.transition(job.id, S.DISPOSING, S.DONE, finished_at=spent_at)
    return job


def test_the_local_calendar_turns_at_local_midnight() -> None:
    start, end = day_bounds(local("2026-03-29 12:00"))  # the day summer time begins: 23 h
    assert (start, end) == (local("2026-03-29 00:00"), local("2026-03-30 00:00"))
    assert end - start == 23 * HOUR
    start, end = month_bounds(local("2026-12-31 23:59"))
    assert (start, end) == (local("2026-12-01 00:00"), local("2027-01-01 00:00"))
    assert month_bounds(local("2027-02-01 00:00"))[1] == local("2027-03-01 00:00")


def test_a_daily_cap_holds_until_the_next_local_day(tmp_path: Path, store: Store) -> None:
    config = make_config(tmp_path, BudgetSettings(hours_per_day=0.01))  # 36 s of audio
    folder = config.folders[0]
    now = local("2026-06-10 22:00")
    add_job(store, folder, "a.wav", 30, spent_at=now - 600, state=S.DONE)
    job = add_job(store, folder, "b.wav", 10)
    guard = guard_for(config, store)

    hold = guard.check(job, folder, now)
    assert hold is not None and hold.kind == "cap_day"
    assert hold.resume_at == local("2026-06-11 00:00") and hold.resume_on == "2026-06-11"
    assert hold.reason.startswith("daily cap of 0.01 h reached: 0.00833 h used;")
    assert "waits until 2026-06-11 or a higher cap (hours_per_day in [budget])" in hold.reason
    # a 6 s recording still fits (30 + 6 = 36 s); the next day the 10 s one does too
    assert guard.check(add_job(store, folder, "c.wav", 6), folder, now) is None
    assert guard.check(job, folder, local("2026-06-11 00:00")) is None


def test_a_monthly_cap_counts_every_folder_and_a_folders_cap_only_its_own(
    tmp_path: Path, store: Store
) -> None:
    config = make_config(
        tmp_path, BudgetSettings(hours_per_month=0.02), hours_per_month=0.01
    )  # 72 s for all, 36 s for this folder
    folder = config.folders[0]
    other = dataclasses.replace(folder, inbox=tmp_path / "other")
    now = local("2026-11-30 23:00")
    add_job(store, other, "x.wav", 50, spent_at=local("2026-11-02 08:00"), state=S.DONE)
    add_job(store, folder, "old.wav", 500, spent_at=local("2026-10-31 23:59"), state=S.DONE)
    guard = guard_for(config, store)
    small = add_job(store, folder, "small.wav", 20)
    hold = guard.check(small, folder, now)  # 50 + 20 = 70 s ≤ 72 s; the folder's own: 20 s
    assert hold is None
    add_job(store, folder, "mine.wav", 20, spent_at=now - 60, state=S.UPLOADED)
    big = add_job(store, folder, "big.wav", 20)
    hold = guard.check(big, folder, now)
    assert hold is not None and hold.kind == "cap_folder_month"  # 20 + 20 > 36 s
    assert hold.reason.startswith("monthly cap of folder inbox of 0.01 h reached")
    assert hold.resume_on == "2026-12-01"
    released = dataclasses.replace(
        big, facts=release_facts({**big.facts, "hold": {"kind": hold.kind}})
    )
    hold = guard.check(released, folder, now)  # not held again by the folder's cap …
    assert hold is not None and hold.kind == "cap_month"  # … but 50 + 20 + 20 > 72 s is
    assert guard.check(big, folder, local("2026-12-01 00:00")) is None


def test_what_counts_as_spent(tmp_path: Path, store: Store) -> None:
    config = make_config(tmp_path, BudgetSettings(hours_per_day=1.0))
    folder = config.folders[0]
    now = local("2026-06-10 12:00")
    add_job(store, folder, "done.wav", 600, spent_at=now - 60, state=S.DONE)
    add_job(store, folder, "flying.wav", 300, spent_at=now - 60, state=S.UPLOADED)
    # failed before it was submitted: Cleanvoice never billed it
    add_job(store, folder, "broken.wav", 900, spent_at=now - 60, state=S.FAILED)
    add_job(store, folder, "waiting.wav", 1200)  # never passed the guard
    add_job(store, folder, "yesterday.wav", 1800, spent_at=now - 86400, state=S.DONE)
    start, end = day_bounds(now)
    spent = store.spent(start, end)
    assert (spent.hours * HOUR, spent.recordings) == (pytest.approx(900), 2)


def test_a_recording_of_unknown_length_counts_as_configured(tmp_path: Path, store: Store) -> None:
    config = make_config(tmp_path, BudgetSettings(hours_per_day=1.5, unknown_duration_hours=2.0))
    folder = config.folders[0]
    job = add_job(store, folder, "mystery.mkv", None)
    hold = guard_for(config, store).check(job, folder, local("2026-06-10 12:00"))
    assert hold is not None and hold.needs_hours == 2.0
    assert "this recording alone (2.0 h) is more than the cap" in hold.reason


def test_a_held_job_waits_and_a_raised_cap_lets_it_go(tmp_path: Path, store: Store) -> None:
    config = make_config(tmp_path, BudgetSettings(hours_per_month=0.01))
    folder = config.folders[0]
    now = time.time()
    add_job(store, folder, "first.wav", 30, spent_at=now, state=S.DONE)
    job = add_job(store, folder, "second.wav", 30)
    runtime = Runtime(config, store, client_for(config.cleanvoice, "k"))
    guard = SpendGuard(runtime)
    hold = guard.check(job, folder)
    assert hold is not None
    held = guard.hold(job, hold)
    assert held.state is S.HELD and held.error == hold.reason
    assert held.next_attempt_at == hold.resume_at == month_bounds(now)[1]
    summary = held_summary(config, store)
    assert [g["kind"] for g in summary] == ["cap_month"]
    assert "1 recording, 0.00833 h, wait until" in summary[0]["words"]

    # a reload that raises the cap makes the held job due at once …
    runtime.reconfigure(dataclasses.replace(config, budget=BudgetSettings(hours_per_month=1)))
    woken = store.get(job.id)
    assert woken is not None and woken.next_attempt_at == 0
    # … and its step queues it again

    asyncio.run(guard.recheck(woken, folder))
    again = store.get(job.id)
    assert again is not None and again.state is S.QUEUED and again.error is None
    assert "hold" not in again.facts


def test_a_backlog_hold_waits_for_a_person(tmp_path: Path, store: Store) -> None:
    config = make_config(tmp_path, BudgetSettings())
    folder = config.folders[0]
    job = add_job(store, folder, "old.wav", 5)
    job = store.update(job.id, S.QUEUED, None, facts={**job.facts, "backlog": "hold"})
    guard = guard_for(config, store)
    hold = guard.check(job, folder)
    assert hold is not None and hold.kind == "backlog" and hold.resume_at is None
    held = guard.hold(job, hold)
    assert held.next_attempt_at == NEVER
    assert "cvsyncd release" in (held.error or "")
    released = dataclasses.replace(held, facts=release_facts(held.facts))
    assert released.facts["released"] == ["backlog"]
    assert guard.check(released, folder) is None


# -- the backlog decision ---------------------------------------------------------------


def fill(inbox: Path, seconds: list[float]) -> None:
    for i, length in enumerate(seconds):
        make_wav(inbox / f"ep{i}.wav", seconds=length)


@pytest.mark.parametrize(
    ("existing", "backlog_hours", "decision"),
    [
        ("auto", 0.002, "take"),  # 7.2 s allowed, 6 s there
        ("auto", 0.001, "hold"),  # 3.6 s allowed, 6 s there
        ("take", 0.0, "take"),
        ("hold", 100.0, "hold"),
        ("skip", 100.0, "skip"),
    ],
)
def test_each_existing_mode_decides_the_backlog_once(
    tmp_path: Path, store: Store, existing: str, backlog_hours: float, decision: str
) -> None:
    config = make_config(tmp_path, BudgetSettings(backlog_hours=backlog_hours), existing=existing)
    folder = config.folders[0]
    fill(folder.inbox, [2.0, 2.0, 2.0])
    (folder.inbox / "notes.txt").write_text("show notes")  # not a recording: not counted
    backlogs = Backlogs(Runtime(config, store, client_for(config.cleanvoice, "k")))

    decided = asyncio.run(backlogs.decide(folder))
    assert decided is not None and decided.decision == decision
    assert decided.hours * HOUR == pytest.approx(6.0, abs=0.01)
    assert sorted(decided.entries) == ["ep0.wav", "ep1.wav", "ep2.wav"]
    st = os.stat(folder.inbox / "ep0.wav")
    assert decided.covers("ep0.wav", st.st_size, st.st_mtime_ns)
    assert not decided.covers("ep0.wav", st.st_size + 1, st.st_mtime_ns)  # changed since
    # decided once: a recording added later is not part of it, even after a "restart"
    make_wav(folder.inbox / "new.wav", seconds=2.0)
    again = asyncio.run(Backlogs(backlogs.runtime).decide(folder))
    assert again == decided and not again.covers("new.wav", None, None)


def test_an_inbox_weighed_empty_is_weighed_again_once_a_share_is_mounted_over_it(
    tmp_path: Path, store: Store
) -> None:
    """At the first start the share is not mounted yet: the inbox is the bare, empty
    folder. When the share turns up there, its archive is the backlog, not 400 new
    recordings to pay for. (A mount cannot be made in every test environment: the inbox
    becomes a link to a folder on tmpfs, which changes its device as a mount does.)"""
    share = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        config = make_config(tmp_path, BudgetSettings(backlog_hours=0.001))  # 3.6 s
        folder = config.folders[0]
        if os.stat(share).st_dev == os.stat(folder.inbox).st_dev:
            pytest.skip("/dev/shm is on the same filesystem as the test folder here")
        runtime = Runtime(config, store, client_for(config.cleanvoice, "k"))
        with capture_logs() as logs:
            empty = asyncio.run(Backlogs(runtime).decide(folder))
            assert empty is not None and empty.decision == "take" and not empty.entries
            # a recording added to the same folder is new, as ever: nothing is weighed again
            make_wav(folder.inbox / "first.wav", seconds=3.0)
            assert asyncio.run(Backlogs(runtime).decide(folder)) == empty
            fill(share, [2.0, 2.0])  # the archive: 4 s, above the 3.6 s allowed
            (folder.inbox / "first.wav").unlink()
            folder.inbox.rmdir()
            folder.inbox.symlink_to(share)  # the share is mounted over the inbox
            again = asyncio.run(Backlogs(runtime).decide(folder))
            assert again is not None and again.decision == "hold"  # above backlog_hours
            assert sorted(again.entries) == ["ep0.wav", "ep1.wav"]
            # weighed once: after a restart it stays as decided
            assert asyncio.run(Backlogs(runtime).decide(folder)) == again
        [warning] = [e for e in logs if e["event"] == "inbox.backlog_again"]
        assert str(folder.inbox) in warning["reason"]
    finally:
        shutil.rmtree(share)


def test_a_folder_with_jobs_from_before_has_no_backlog(tmp_path: Path, store: Store) -> None:
    config = make_config(tmp_path, BudgetSettings(backlog_hours=0), existing="hold")
    folder = config.folders[0]
    fill(folder.inbox, [1.0])
    add_job(store, folder, "earlier.wav", 5)

    decided = asyncio.run(
        Backlogs(Runtime(config, store, client_for(config.cleanvoice, "k"))).decide(folder)
    )
    assert decided is not None and decided.decision == "none" and not decided.entries


def test_measure_reads_lengths_and_says_what_is_not_media(tmp_path: Path) -> None:
    config = make_config(tmp_path, BudgetSettings())
    folder = config.folders[0]
    make_wav(folder.inbox / "show" / "a.wav", seconds=1.5)
    (folder.inbox / "fake.mp3").write_bytes(b"this is not audio at all" * 10)
    found = {r.name: r for r in measure(folder)}
    assert found["show/a.wav"].seconds == pytest.approx(1.5, abs=0.01)
    assert found["fake.mp3"].seconds is None and found["fake.mp3"].problem
    assert found["fake.mp3"].hours(config.budget) == 0.0  # it would fail, not be billed


def test_a_balance_that_fell_over_one_edit_is_its_cost_in_the_ledger(
    tmp_path: Path, store: Store
) -> None:
    config = make_config(tmp_path, BudgetSettings())
    folder = config.folders[0]
    guard = guard_for(config, store)
    t0 = local("2026-06-10 10:00")
    one = add_job(store, folder, "one.wav", 1800, spent_at=t0 + 10, state=S.DONE)
    store.update(one.id, S.DONE, None, submitted_at=t0 + 20, finished_at=t0 + 60)
    guard.note_balance(10.0, "hours", t0)
    guard.note_balance(9.5, "hours", t0 + 100)  # one edit created in between: it cost 0.5
    assert store.get(one.id).facts["cost"] == {  # type: ignore[union-attr]
        "credits": 0.5,
        "unit": "hours",
        "told_by": "balance",
    }
    # two edits between two readings: the fall cannot be shared out, nothing is told
    two = add_job(store, folder, "two.wav", 60, spent_at=t0 + 110, state=S.DONE)
    three = add_job(store, folder, "three.wav", 60, spent_at=t0 + 120, state=S.DONE)
    for job, at in ((two, t0 + 130), (three, t0 + 140)):
        store.update(job.id, S.DONE, None, submitted_at=at, finished_at=at + 10)
    guard.note_balance(9.4, "hours", t0 + 200)
    assert "cost" not in store.get(two.id).facts  # type: ignore[union-attr]

    report = usage_report(config, store, "folder", "2026-06")
    assert report["rows"] == [
        {
            "folder": "inbox",
            "recordings": 3,
            "hours": round((1800 + 60 + 60) / HOUR, 4),
            "unknown_length": 0,
            "credits": 0.5,
        }
    ]
    by_day = usage_report(config, store, "day", "2026-06")
    assert [r["day"] for r in by_day["rows"]] == ["2026-06-10"]
    assert usage_report(config, store, "folder", "2026-07")["rows"] == []
