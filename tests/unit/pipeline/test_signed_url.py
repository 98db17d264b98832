"""A preset's ``signed_url`` carries a signature: the store keeps it without its query,
and the create-edit request gets it whole again from the config (real config objects)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import pytest

from cvsyncd.config import Config, Folder
from cvsyncd.errors import JobError
from cvsyncd.jobs import InputFile, Job, JobState
from cvsyncd.pipeline.submit import with_signed_url
from cvsyncd.redact import shown_options
from tests.conftest import one_folder_config

SIGNED = "https://bucket.example.com/out.mp3?X-Amz-Signature=s3cr3tsignature"


def config_with(tmp_path: Path, signed_url: str) -> tuple[Config, Folder]:
    config = one_folder_config(
        tmp_path, preset="talk", options={"fillers": True, "signed_url": signed_url}
    )
    return config, config.folders[0]


def job_with(folder: Folder, options: Mapping[str, object]) -> Job:
    taken = (InputFile("ep.wav", 1, 1, "f" * 64),)
    return Job(7, folder.key, "ep.wav", "f" * 64, options, JobState.SUBMITTING, taken)


def test_the_store_keeps_no_signature_and_the_request_gets_it_whole(tmp_path: Path) -> None:
    config, folder = config_with(tmp_path, SIGNED)
    stored = shown_options(folder.options)
    assert "s3cr3tsignature" not in str(stored)
    sent = with_signed_url(config, folder, job_with(folder, stored), dict(stored))
    assert sent == {"fillers": True, "signed_url": SIGNED}


def test_a_signed_url_changed_since_the_recording_was_taken_waits_saying_why(
    tmp_path: Path,
) -> None:
    config, folder = config_with(tmp_path, SIGNED)
    stored = shown_options(folder.options)
    moved = dataclasses.replace(
        folder, options={"fillers": True, "signed_url": "https://other.example.com/x?sig=1"}
    )
    with pytest.raises(JobError) as caught:
        with_signed_url(config, moved, job_with(moved, stored), dict(stored))
    assert caught.value.retryable
    assert "cvsyncd forget" in caught.value.message and "other.example.com" not in str(
        caught.value.message
    )
    assert "s3cr3tsignature" not in caught.value.message


def test_options_without_a_redacted_url_go_as_they_are(tmp_path: Path) -> None:
    config, folder = config_with(tmp_path, SIGNED)
    old = {"fillers": True, "signed_url": SIGNED}  # a job stored before this was kept out
    assert with_signed_url(config, folder, job_with(folder, old), dict(old)) == old
    plain = {"fillers": True}
    assert with_signed_url(config, folder, job_with(folder, plain), dict(plain)) == plain
