"""What the pages show, read from a real store: the jobs list pages by id, filters, and
downloads serve only a job's own outputs inside its outbox."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cvsyncd.config import Config, parse_config
from cvsyncd.jobs import InputFile, JobState, Store
from cvsyncd.web import views
from cvsyncd.web.downloads import OutputMissing, open_output

S = JobState


@pytest.fixture
def config(tmp_path: Path) -> Config:
    for name in ("in", "out", "in2", "out2"):
        (tmp_path / name).mkdir()
    data = {
        "daemon": {"state_dir": "state"},
        "presets": {"p": {"fillers": True}},
        "folders": [
            {"inbox": "in", "outbox": "out", "preset": "p", "name": "show"},
            {"inbox": "in2", "outbox": "out2", "preset": "p", "name": "other"},
        ],
    }
    return parse_config(data, tmp_path / "c.toml", {"HOME": str(tmp_path)})


@pytest.fixture
def store(config: Config) -> Iterator[Store]:
    s = Store.open(config.daemon.state_dir)
    yield s
    s.close()


def add(store: Store, folder: str, n: int) -> int:
    job = store.create_job(
        folder, f"ep{n}.wav", [InputFile(f"ep{n}.wav", 10, 1, f"{n:064x}")], {"fillers": True}
    )
    assert job is not None
    return job.id


def test_the_jobs_page_pages_by_id_and_filters(config: Config, store: Store) -> None:
    show, other = (f.key for f in config.folders)
    ids = [add(store, show if n % 3 else other, n) for n in range(120)]
    store.transition(ids[10], S.QUEUED, S.FAILED, "broken", error="broken")
    first = views.jobs_page(config, store, [], None, None)
    assert [r["id"] for r in first["rows"]] == ids[::-1][: views.PAGE]
    assert first["older"] == first["rows"][-1]["id"]
    second = views.jobs_page(config, store, [], None, first["older"])
    assert [r["id"] for r in second["rows"]] == ids[::-1][views.PAGE : 2 * views.PAGE]
    last = views.jobs_page(config, store, [], None, ids[5])
    assert [r["id"] for r in last["rows"]] == ids[:5][::-1] and last["older"] is None
    failed = views.jobs_page(config, store, ["failed", "no-such-state"], None, None)
    assert [r["id"] for r in failed["rows"]] == [ids[10]] and failed["states"] == ["failed"]
    assert failed["rows"][0]["folder"] == "show"
    others = views.jobs_page(config, store, [], "other", None)
    assert {r["folder"] for r in others["rows"]} == {"other"}
    assert len(others["rows"]) == 40


def test_the_overview_says_why_a_folder_is_not_watching(config: Config, store: Store) -> None:
    show, other = config.folders
    store.set_hold(show.key, "paused from the dashboard")
    seen = views.overview(
        config, store, lambda key: "not mounted" if key == other.key else None, "12.0 hours"
    )
    states = {f.name: (f.state, f.why) for f in seen["folders"]}
    assert states == {
        "show": ("paused", "paused from the dashboard"),
        "other": ("unavailable", "not mounted"),
    }
    assert seen["credit"] == "12.0 hours" and not seen["all_paused"]


def test_a_download_is_only_a_written_output_inside_the_outbox(
    config: Config, store: Store, tmp_path: Path
) -> None:
    show = config.folders[0]
    job_id = add(store, show.key, 1)
    inside = show.outbox / "sub" / "ep1.wav"
    inside.parent.mkdir()
    inside.write_bytes(b"cleaned")
    outputs = [
        {"path": str(inside), "written": True},
        {"path": str(show.outbox / "pending.txt"), "written": False},
        {"path": str(tmp_path / "c.toml"), "written": True},  # outside the outbox
        {"path": str(show.outbox / ".." / "c.toml"), "written": True},
        {"path": str(show.outbox / "link.wav"), "written": True},
    ]
    (show.outbox / "link.wav").symlink_to(tmp_path / "c.toml")
    (tmp_path / "c.toml").write_text("secret")
    job = store.update(job_id, S.QUEUED, None, outputs=outputs)
    fd, name, size = open_output(job, show, 0)
    try:
        assert (name, size, os.read(fd, 100)) == ("ep1.wav", 7, b"cleaned")
    finally:
        os.close(fd)
    for n in (1, 2, 3, 4):  # n=1 is the outside one: the unwritten output is not listed
        with pytest.raises(OutputMissing):
            open_output(job, show, n)
    # a folder on the way replaced by a link is not followed either
    (show.outbox / "sub" / "ep1.wav").unlink()
    (show.outbox / "sub").rmdir()
    (show.outbox / "sub").symlink_to(tmp_path / "in")
    (tmp_path / "in" / "ep1.wav").write_bytes(b"someone else's")
    with pytest.raises(OutputMissing):
        open_output(job, show, 0)


def test_usage_is_the_ledgers_hours_per_folder_and_month(config: Config, store: Store) -> None:
    show = config.folders[0]
    mid_december, mid_january = 1_765_800_000.0, 1_768_478_400.0  # the 15th, local or UTC
    for n, (finished, facts) in enumerate(
        [
            (mid_december, {"duration": 1800}),
            (mid_december, {"duration": 1800, "cost": {"credits": 0.5}}),
            (mid_january, {"duration": 1800}),
            (mid_january, {}),  # a length that could not be read
        ]
    ):
        job_id = add(store, show.key, n)
        store.update(job_id, S.QUEUED, None, facts=facts)
        store._conn.execute(  # done in that month, without running the pipeline
            "UPDATE jobs SET state = 'done', finished_at = ? WHERE id = ?", (finished, job_id)
        )
    seen = views.usage(config, store)
    assert seen["folders"] == ["show"]
    assert [
        (r["month"], r["total"], r["jobs"], r["unknown"], r["credits"]) for r in seen["table"]
    ] == [("2025-12", 1.0, 2, 0, 0.5), ("2026-01", 0.5, 2, 1, None)]
    assert len(seen["chart"]["bars"]) == 2


def test_the_overview_lists_held_jobs_with_why(config: Config, store: Store) -> None:
    show = config.folders[0]
    job_id = add(store, show.key, 1)
    hold = {"kind": "backlog", "reason": "already in the inbox at the first start"}
    store.transition(job_id, S.QUEUED, S.HELD, "held", facts={"hold": hold})
    seen = views.overview(config, store, lambda key: None, None)
    assert seen["held_total"] == 1 and seen["held"][0]["hold"] == hold["reason"]
    assert seen["held"][0]["releasable"] and seen["held_why"]
    page = views.job_page(config, store, job_id)
    assert page is not None and page["releasable"] and page["hold"] == hold["reason"]


def test_the_dashboard_names_another_sites_jobs_by_their_site(tmp_path: Path) -> None:
    from cvsyncd.jobs import InputFile, Job, JobState
    from cvsyncd.web.views import job_row
    from tests.unit.config.test_loading import FOLDER, load

    config = load(
        tmp_path,
        '[store]\nurl = "postgresql://cvsyncd@db.lan/cvsyncd"\nsite = "studio-a"\n' + FOLDER,
    )
    folder = config.folders[0]
    inputs = (InputFile("ep.wav", 1, 1, "f"),)
    mine = Job(1, folder.key, "ep.wav", "f", {}, JobState.QUEUED, inputs, site="studio-a")
    theirs = Job(2, folder.key, "ep.wav", "g", {}, JobState.QUEUED, inputs, site="studio-b")
    assert job_row(mine, config)["folder"] == folder.name
    assert job_row(theirs, config)["folder"] == f"{folder.key} @ studio-b"
