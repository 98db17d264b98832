"""The official Python SDK (cleanvoice-sdk 2.0.5), unchanged, against the emulator.

If the SDK works here, the emulator speaks the API the way the vendor's own client expects.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cleanvoice import Cleanvoice
from cleanvoice.types import ApiError

from cvsyncd.emulator import Emulator
from tests.conftest import make_wav

KEY = "sdk-test-key"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    # The SDK polls first after 2 s; finish before that so one poll suffices.
    with Emulator(tmp_path / "emulator", api_key=KEY, processing_seconds=0.5) as running:
        yield running


def test_process_uploads_polls_and_downloads(emulator: Emulator, tmp_path: Path) -> None:
    source = tmp_path / "episode.wav"
    data = make_wav(source, seconds=2.0).read_bytes()
    output = tmp_path / "cleaned.wav"
    with Cleanvoice(api_key=KEY, base_url=emulator.base_url) as client:
        result = client.process(
            str(source), transcription=True, export_timestamps=True, output_path=str(output)
        )

    assert output.read_bytes() == data
    assert result.transcript is not None and result.transcript.text.startswith(" This is emulated")
    assert result.transcript.detailed.paragraphs[0].speaker == "SPEAKER_00"
    assert isinstance(result.timestamps_markers_urls, dict)
    assert set(result.timestamps_markers_urls) == {"timeline_audacity"}
    assert result.audio.statistics.FILLER_SOUND is not None
    assert result.task_id is not None

    endpoints = [record["endpoint"] for record in emulator.requests()]
    assert endpoints[:3] == ["upload", "put", "create"] and endpoints[-1] == "download"
    [create] = [record for record in emulator.requests() if record["endpoint"] == "create"]
    assert create["config"] == {"video": False, "transcription": True, "export_timestamps": True}


def test_check_auth(emulator: Emulator) -> None:
    with Cleanvoice(api_key=KEY, base_url=emulator.base_url) as client:
        account = client.check_auth()
    assert account["credit"]["total"] == 100.0
    assert emulator.requests()[-1]["path"] == "/v1/account"


def test_wrong_key_is_an_api_error(emulator: Emulator) -> None:
    with (
        Cleanvoice(api_key="wrong", base_url=emulator.base_url) as client,
        pytest.raises(ApiError) as raised,
    ):
        client.check_auth()
    assert raised.value.status_code == 401 and raised.value.error_code == "INVALID_API_KEY"


def test_failed_edit_is_reported(emulator: Emulator, tmp_path: Path) -> None:
    fake = tmp_path / "fake.mp3"
    fake.write_bytes(b"this is not audio")
    with (
        Cleanvoice(api_key=KEY, base_url=emulator.base_url) as client,
        pytest.raises(ApiError) as raised,
    ):
        client.process(str(fake))
    assert "not a supported audio or video format" in str(raised.value)
