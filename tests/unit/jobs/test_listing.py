"""`cvsyncd jobs`: the listing the database builds (SQLite's triggers, PostgreSQL's query:
``store`` runs each test on both) is the summary Python builds, filtered and paged; a large
listing streams."""

from __future__ import annotations

import itertools
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cvsyncd.jobs import InputFile, JobState, Listing, Store
from cvsyncd.pipeline.report import job_summary

S = JobState


names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=30)
TAKES = itertools.count()
times = st.floats(min_value=0, max_value=4e9, allow_nan=False)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=names,
    tracks=st.integers(min_value=1, max_value=3),
    outputs=st.lists(st.tuples(names, st.booleans()), max_size=4),
    progress=st.none() | st.fixed_dictionaries({"done": st.integers(0, 9), "status": names}),
    duplicate_of=st.none() | st.integers(1, 10**6),
    finished=st.none() | times,
    error=st.none() | names,
)
def test_sqlites_summary_is_pythons(
    store: Store,
    name: str,
    tracks: int,
    outputs: list[tuple[str, bool]],
    progress: dict[str, object] | None,
    duplicate_of: int | None,
    finished: float | None,
    error: str | None,
) -> None:
    inputs = [InputFile(f"{name}/{i}.wav", 1, 1, "f" * 64) for i in range(tracks)]
    facts = {"duplicate_of": duplicate_of} if duplicate_of is not None else {"preset": "x"}
    job = store.create_job("/in", f"{next(TAKES)}-{name}", inputs, {}, facts=facts, now=1.5e9)
    assert job is not None
    store.update(
        job.id,
        S.QUEUED,
        None,
        outputs=[{"path": p, "written": w, "kind": "media"} for p, w in outputs],
        progress=progress,
        error=error,
        finished_at=finished,
        attempts=2,
    )
    stored = store.get(job.id)
    assert stored is not None
    [text] = store.summaries_json(Listing(before=job.id + 1, limit=1))
    assert json.loads(text) == job_summary(stored)


def test_filters_and_pages(store: Store) -> None:
    for i in range(10):
        folder = "/a" if i % 2 else "/b"
        job = store.create_job(folder, f"{i}.wav", [InputFile(f"{i}.wav", 1, 1, str(i))], {})
        assert job is not None
        if i % 3 == 0:
            store.transition(job.id, S.QUEUED, S.FAILED, "no")

    def ids(listing: Listing) -> list[int]:
        return [json.loads(t)["id"] for t in store.summaries_json(listing)]

    assert ids(Listing()) == list(range(10, 0, -1))  # newest first
    assert ids(Listing(limit=3)) == [10, 9, 8]
    assert ids(Listing(before=8, limit=3)) == [7, 6, 5]  # the next page
    assert ids(Listing(states=(S.FAILED,))) == [10, 7, 4, 1]
    assert ids(Listing(folders=("/a",), states=(S.FAILED,))) == [10, 4]
    assert ids(Listing(limit=0)) == []
    assert [line[0] for line in store.lines(Listing(folders=("/b",), limit=2))] == [9, 7]


def test_a_summary_cuts_times_to_the_second_as_python_does(store: Store) -> None:
    # SQLite's datetime() rounds to the millisecond: 44.9997 s must not read as 45 s
    job = store.create_job(
        "/in", "late.wav", [InputFile("late.wav", 1, 1, "f" * 64)], {}, now=1764631604.9997
    )
    assert job is not None
    [text] = store.summaries_json(Listing(before=job.id + 1, limit=1))
    assert (
        json.loads(text)["created_at"] == job_summary(job)["created_at"] == "2025-12-01T23:26:44Z"
    )
