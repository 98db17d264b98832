"""Which edit configs keep the recording's timing (so a video's sound may go alone)."""

from __future__ import annotations

from typing import Any

import pytest

from cvsyncd.config.presets import CUTS_UNLESS_MUTED, timing_changes


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"remove_noise": True, "normalize": True, "studio_sound": "nightly"},
        {"keep_music": True, "autoeq": True, "target_lufs": -16, "mute_lufs": -60},
        {"transcription": True, "summarize": True, "export_timestamps": True},
        {"breath": True},
        {"breath": "muted"},
        {"breath": "natural"},
        {"fillers": True, "long_silences": True, "stutters": True, "muted": True},
        {"mouth_sounds": True, "hesitations": True, "breath": "legacy", "muted": True},
        {"fillers": False, "export_format": "mp3", "video": True},
    ],
)
def test_enhancing_and_muting_keep_the_timing(options: dict[str, Any]) -> None:
    assert timing_changes(options) == []


@pytest.mark.parametrize("key", CUTS_UNLESS_MUTED)
def test_each_cutting_edit_is_named_unless_muted(key: str) -> None:
    [reason] = timing_changes({key: True, "remove_noise": True})
    assert reason.startswith(f"{key} = true cuts") and "muted = true" in reason
    assert timing_changes({key: True, "muted": False}) != []


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"trim": True, "muted": True}, "trim = true cuts the start and the end"),
        ({"breath": "legacy"}, 'breath = "legacy" may cut'),
        ({"template_id": 7}, "template's settings are not known"),
        ({"audio_for_edl": True}, "not documented"),
    ],
)
def test_what_is_not_known_to_keep_timing_is_not_taken_to(
    options: dict[str, Any], words: str
) -> None:
    assert any(words in reason for reason in timing_changes(options))
