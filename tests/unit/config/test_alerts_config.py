"""The ``[alerts]`` section: defaults, every problem at once, and no URL in a message."""

from __future__ import annotations

from pathlib import Path

from cvsyncd.config.model import ALERT_EVENTS, AlertSettings
from tests.unit.config.test_loading import FOLDER, load, problems


def test_without_the_section_there_are_no_alerts(tmp_path: Path) -> None:
    config = load(tmp_path, FOLDER)
    assert config.alerts == AlertSettings()
    assert config.alerts.urls == ()


def test_the_section_with_its_defaults(tmp_path: Path) -> None:
    config = load(
        tmp_path, '[alerts]\nurls = ["ntfy://my-topic", "json://127.0.0.1:8/a"]\n' + FOLDER
    )
    assert config.alerts.urls == ("ntfy://my-topic", "json://127.0.0.1:8/a")
    assert config.alerts.events == ALERT_EVENTS
    assert set(ALERT_EVENTS) == {
        "failed",
        "needs_attention",
        "paused",
        "unavailable",
        "held",
        "store",
    }
    assert config.alerts.group_seconds == 60.0
    assert "my-topic" not in repr(config.alerts)  # a URL may hold a token


def test_chosen_events_and_window(tmp_path: Path) -> None:
    text = '[alerts]\nurls = ["ntfy://t"]\nevents = ["failed", "paused"]\ngroup_seconds = 0\n'
    config = load(tmp_path, text + FOLDER)
    assert config.alerts.events == ("failed", "paused")
    assert config.alerts.group_seconds == 0.0


def test_every_problem_at_once_and_no_url_shown(tmp_path: Path) -> None:
    text = (
        "[alerts]\n"
        'urls = ["ntfy://fine", "my secret token 1234"]\n'
        'events = ["failed", "faild"]\n'
        "group_seconds = -1\n"
        "colour = 1\n"
    )
    found = {p.key: p for p in problems(tmp_path, text + FOLDER)}
    assert set(found) == {
        "alerts.urls",
        "alerts.events",
        "alerts.group_seconds",
        "alerts.colour",
    }
    assert "URL number 2" in found["alerts.urls"].message
    assert "secret token" not in str(found["alerts.urls"])
    assert 'did you mean "failed"' in found["alerts.events"].message
    assert "0 or more" in found["alerts.group_seconds"].message
