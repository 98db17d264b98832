"""The supervisor's turn, on a real SQLite store and real folders (the watcher is made
but not started: a turn only asks it what it knows)."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from cvsyncd.cleanvoice.client import client_for
from cvsyncd.daemon.supervisor import Supervisor
from cvsyncd.daemon.systemd import Notifier
from cvsyncd.inbox.watcher import Watcher
from cvsyncd.jobs import Store
from cvsyncd.jobs.meta import ALL_FOLDERS
from cvsyncd.pipeline.runtime import Runtime
from cvsyncd.pipeline.scheduler import Pipeline
from tests.conftest import one_folder_config


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[Store, Pipeline, Supervisor]]:
    config = one_folder_config(tmp_path)
    store = Store.open(config.daemon.state_dir)
    try:
        runtime = Runtime(config, store, client_for(config.cleanvoice, "k"))
        pipeline = Pipeline(runtime)
        watcher = Watcher(config.folders, 0.1, pipeline.intake, pipeline.is_known)
        yield store, pipeline, Supervisor(runtime, pipeline, watcher, Notifier(None), None)
    finally:
        store.close()


def operator_events(logs: list[MutableMapping[str, Any]]) -> list[tuple[object, object]]:
    return [(e["event"], e["folders"]) for e in logs if str(e["event"]).startswith("operator.")]


def test_a_pause_and_a_resume_are_logged_even_when_the_scheduler_read_them_first(
    parts: tuple[Store, Pipeline, Supervisor],
) -> None:
    """The scheduler reads the holds on each of its passes. A pass that comes between
    `cvsyncd pause` (or the dashboard's button) and the supervisor's turn already holds
    the new ones: the turn must still say what the operator did."""
    store, pipeline, supervisor = parts
    with capture_logs() as logs:
        supervisor.turn()
        store.set_hold(ALL_FOLDERS, "studio maintenance")
        pipeline._start_due_steps()  # a pass of the scheduler, which reads the holds first
        supervisor.turn()
        store.set_hold(ALL_FOLDERS, None)
        pipeline._start_due_steps()
        supervisor.turn()
        supervisor.turn()  # nothing changed since: nothing more is said
    assert operator_events(logs) == [
        ("operator.paused", [ALL_FOLDERS]),
        ("operator.resumed", []),
    ]
    assert pipeline.holds == {}
