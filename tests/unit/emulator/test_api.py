"""The emulator's API over real HTTP on 127.0.0.1: flow, auth, validation, results, limits.

Storage details live in test_storage.py, faults and the admin endpoint in
test_faults.py, the command line in test_command.py.
"""

from __future__ import annotations

import io
import itertools
import struct
import time
import wave
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from cvsyncd.emulator import Emulator
from tests.conftest import TLS, fetch, wav_bytes

KEY = "cv-emulator-key"


RUNNING = [
    "PENDING",
    "STARTED",
    "PREPROCESSING",
    "CLASSIFICATION",
    "EDITING",
    "POSTPROCESSING",
    "EXPORT",
]


def wav_samples(data: bytes) -> list[int]:
    with wave.open(io.BytesIO(data), "rb") as reader:
        frames = reader.readframes(reader.getnframes())
    return list(struct.unpack(f"<{len(frames) // 2}h", frames))


def error_message(body: dict[str, Any]) -> str:
    """Parse every documented error shape, as a client must."""
    if isinstance(body.get("error"), dict):
        return str(body["error"]["message"])
    detail = body.get("detail")
    if isinstance(detail, dict):
        return str(detail["error"]["message"])
    if isinstance(detail, str):
        return detail
    return str(body["message"])


Started = tuple[Emulator, httpx.Client]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Started]]:
    """Start emulators with given settings (fast processing by default); stop them after."""
    with ExitStack() as stack:
        numbers = iter(range(100))

        def start_one(**settings: Any) -> Started:
            settings.setdefault("processing_seconds", 0.2)
            emulator = Emulator(tmp_path / f"emulator-{next(numbers)}", **settings)
            stack.enter_context(emulator)
            client = httpx.Client(
                base_url=emulator.base_url, headers={"X-API-Key": KEY}, timeout=10, verify=TLS
            )
            stack.enter_context(client)
            return emulator, client

        yield start_one


@pytest.fixture
def emulator(start: Callable[..., Started]) -> Started:
    return start()


def upload(api: httpx.Client, name: str, data: bytes) -> str:
    """Upload ``data`` the documented way; return the presigned URL."""
    answer = api.post("/upload", params={"filename": name})
    assert answer.status_code == 200, answer.text
    url = answer.json()["signedUrl"]
    stored = fetch("PUT", url, content=data)
    assert stored.status_code == 200, stored.text
    return str(url)


def public(url: str) -> str:
    return url.split("?", 1)[0]


def create(api: httpx.Client, files: list[str], config: dict[str, Any] | None = None) -> str:
    answer = api.post("/edits", json={"input": {"files": files, "config": config or {}}})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def finish(api: httpx.Client, edit_id: str, timeout: float = 10) -> dict[str, Any]:
    """Poll until SUCCESS with a result, or FAILURE; return the last body."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = api.get(f"/edits/{edit_id}").json()
        if body["status"] == "FAILURE" or (body["status"] == "SUCCESS" and body["result"]):
            return body
        time.sleep(0.03)
    raise AssertionError(f"edit {edit_id} did not finish")


def process(
    api: httpx.Client, data: bytes, config: dict[str, Any] | None = None, name: str = "ep1.wav"
) -> dict[str, Any]:
    return finish(api, create(api, [public(upload(api, name, data))], config))


# -- the whole flow -----------------------------------------------------------------------


def test_upload_process_download_delete(start: Callable[..., Started]) -> None:
    emulator, api = start(processing_seconds=0.7)
    data = wav_bytes()
    edit_id = create(api, [public(upload(api, "ep1.wav", data))])
    seen: list[str] = []
    deadline = time.monotonic() + 10
    while True:
        assert time.monotonic() < deadline, f"not done after 10 s: {seen}"
        body = api.get(f"/edits/{edit_id}").json()
        assert body["task_id"] == edit_id
        if body["status"] == "SUCCESS":
            break
        seen.append(body["status"])
        if body["status"] == "PENDING":
            assert body["result"] is None
        elif body["status"] not in ("STARTED",):
            assert set(body["result"]) == {
                "done",
                "total",
                "state",
                "phase",
                "step",
                "substep",
                "job_name",
            }
            assert body["result"]["state"] == body["status"] and body["result"]["total"] == 100
        time.sleep(0.05)
    assert seen == sorted(seen, key=RUNNING.index) and {"PENDING", "EXPORT"} <= set(seen)
    result = body["result"]
    assert result["video"] is False
    assert len(result["filename"]) == 32 and "." not in result["filename"]
    assert set(result["statistics"]) == {
        "BREATH",
        "DEADAIR",
        "STUTTERING",
        "MOUTH_SOUND",
        "FILLER_SOUND",
    }
    assert result["waveform_result"] is None
    downloaded = fetch("GET", result["download_url"])
    assert downloaded.status_code == 200 and downloaded.content == data
    assert downloaded.headers["Accept-Ranges"] == "bytes"
    assert result["download_url"].split("?")[0].endswith(f"/{result['filename']}.wav")

    assert api.delete(f"/edits/{edit_id}").status_code == 200
    assert api.get(f"/edits/{edit_id}").json() == {
        "status": "PENDING",
        "result": None,
        "task_id": edit_id,
    }
    gone = fetch("GET", result["download_url"])
    assert gone.status_code == 404 and "<Code>NoSuchKey</Code>" in gone.text
    assert not list((emulator.data_dir / "objects").rglob("object"))


def test_full_signed_url_is_accepted_as_file(emulator: Started) -> None:
    _, api = emulator
    data = wav_bytes(0.5)
    body = finish(api, create(api, [upload(api, "take.wav", data)]))
    assert body["status"] == "SUCCESS"
    assert fetch("GET", body["result"]["download_url"]).content == data


def test_unknown_edit_id_answers_pending(emulator: Started) -> None:
    _, api = emulator
    body = api.get("/edits/no-such-edit").json()
    assert body == {"status": "PENDING", "result": None, "task_id": "no-such-edit"}
    assert api.delete("/edits/no-such-edit").status_code == 200


def test_account_on_v1_and_v2(emulator: Started) -> None:
    emulator_, api = emulator
    for url in (emulator_.base_url.replace("/v2", "/v1") + "/account", "/account"):
        body = api.get(url).json()
        assert body["credit"] == {"total": 100.0, "subscription": 100.0, "payg": 0.0}
        assert body["credits_remaining"] == 100.0 and body["account_type"] == "emulator"
        assert isinstance(body["meta"], dict)


def test_restart_keeps_port_and_edits(emulator: Started) -> None:
    emulator_, api = emulator
    edit_id = create(api, [public(upload(api, "a.wav", wav_bytes(0.5)))])
    url = emulator_.base_url
    emulator_.stop()
    with pytest.raises(httpx.TransportError):
        api.get(f"/edits/{edit_id}")
    emulator_.start()
    assert emulator_.base_url == url
    assert finish(api, edit_id)["status"] == "SUCCESS"


# -- authentication -----------------------------------------------------------------------

CALLS = [
    ("POST", "/upload?filename=a.wav"),
    ("POST", "/edits"),
    ("GET", "/edits/x"),
    ("DELETE", "/edits/x"),
    ("GET", "/account"),
]


@pytest.mark.parametrize(("method", "path"), CALLS)
@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_api_calls_need_the_key(emulator: Started, method: str, path: str, key: str | None) -> None:
    emulator_, _ = emulator
    headers = {} if key is None else {"X-API-Key": key}
    answer = fetch(method, emulator_.base_url + path, headers=headers, json={"input": {}})
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "INVALID_API_KEY"
    assert emulator_.requests()[-1]["auth"] == ("missing" if key is None else "wrong")
    assert emulator_.requests()[-1]["processed"] is False


def test_key_header_name_is_case_insensitive(emulator: Started) -> None:
    emulator_, _ = emulator
    answer = fetch("GET", emulator_.base_url + "/account", headers={"x-api-key": KEY})
    assert answer.status_code == 200


def test_custom_key(start: Callable[..., Started]) -> None:
    emulator_, api = start(api_key="another-key")
    assert api.get("/account").status_code == 401
    assert (
        fetch(
            "GET", emulator_.base_url + "/account", headers={"X-API-Key": "another-key"}
        ).status_code
        == 200
    )


# -- request validation -------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "?filename=", "?filename=%20"])
def test_upload_needs_a_filename(emulator: Started, query: str) -> None:
    _, api = emulator
    answer = api.post("/upload" + query)
    assert answer.status_code == 400 and "filename" in error_message(answer.json())


def test_upload_tolerates_json_content_type_and_empty_body(emulator: Started) -> None:
    _, api = emulator
    answer = api.post(
        "/upload?filename=a%20b.mp3", headers={"Content-Type": "application/json"}, content=b""
    )
    assert answer.status_code == 200
    assert "/a%20b.mp3?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=" in answer.json()["signedUrl"]


GOOD_URL = "https://example.com/a.mp3"
BAD_BODIES = [
    (b"not json", 400, "JSON"),
    (b'{"input": {"files": ["https://e.com/a.mp3"], "config": {"mute_lufs": NaN}}}', 400, "NaN"),
    ([], 422, "body"),
    ({}, 422, "input"),
    ({"input": {"files": [GOOD_URL], "config": {}}, "extra": 1}, 422, "body.extra"),
    ({"input": {"files": [], "config": {}}}, 422, "input.files"),
    ({"input": {"files": GOOD_URL, "config": {}}}, 422, "input.files"),
    ({"input": {"files": ["ftp://e.com/a.mp3"], "config": {}}}, 422, "input.files[0]"),
    ({"input": {"files": [GOOD_URL, 7], "config": {}}}, 422, "input.files[1]"),
    ({"input": {"files": [GOOD_URL]}}, 422, "input.config"),
    ({"input": {"files": [GOOD_URL], "config": []}}, 422, "input.config"),
    ({"input": {"files": [GOOD_URL], "config": {}, "template_id": "7"}}, 422, "input.template_id"),
    ({"input": {"files": [GOOD_URL], "config": {}, "language": "en"}}, 422, "input.language"),
    ({"input": {"files": [GOOD_URL], "config": {"filler": True}}}, 422, 'did you mean "fillers"'),
    ({"input": {"files": [GOOD_URL], "config": {"language": "en"}}}, 422, "input.config.language"),
    ({"input": {"files": [GOOD_URL], "config": {"fillers": "yes"}}}, 422, "input.config.fillers"),
    ({"input": {"files": [GOOD_URL], "config": {"fillers": None}}}, 422, "input.config.fillers"),
    ({"input": {"files": [GOOD_URL], "config": {"breath": "soft"}}}, 422, "input.config.breath"),
    (
        {"input": {"files": [GOOD_URL], "config": {"studio_sound": "daily"}}},
        422,
        "input.config.studio_sound",
    ),
    (
        {"input": {"files": [GOOD_URL], "config": {"studio_sound": True, "sound_studio": True}}},
        422,
        "sound_studio",
    ),
    ({"input": {"files": [GOOD_URL], "config": {"mute_lufs": 1}}}, 422, "input.config.mute_lufs"),
    (
        {"input": {"files": [GOOD_URL], "config": {"target_lufs": 0}}},
        422,
        "input.config.target_lufs",
    ),
    (
        {"input": {"files": [GOOD_URL], "config": {"target_lufs": True}}},
        422,
        "input.config.target_lufs",
    ),
    (
        {"input": {"files": [GOOD_URL], "config": {"export_format": "ogg"}}},
        422,
        "input.config.export_format",
    ),
    (
        {"input": {"files": [GOOD_URL], "config": {"summarize": True}}},
        422,
        "requires transcription",
    ),
    (
        {"input": {"files": [GOOD_URL], "config": {"social_content": True, "transcription": True}}},
        422,
        "requires summarize",
    ),
]


@pytest.mark.parametrize("style", ["error", "detail", "detail-error", "message", "mixed"])
@pytest.mark.parametrize(("body", "status", "named"), BAD_BODIES)
def test_bad_create_bodies_are_refused(
    start: Callable[..., Started], style: str, body: Any, status: int, named: str
) -> None:
    emulator_, api = start(error_style=style)
    if isinstance(body, bytes):
        answer = api.post("/edits", content=body, headers={"Content-Type": "application/json"})
    else:
        answer = api.post("/edits", json=body)
    assert answer.status_code == status
    assert named in error_message(answer.json())
    assert emulator_.requests()[-1]["processed"] is False
    assert api.get("/account").json()["credits_remaining"] == 100.0


@pytest.mark.parametrize(
    "config",
    [
        {"breath": "natural", "studio_sound": "nightly", "export_format": "flac"},
        {"breath": True, "sound_studio": "nightly", "mute_lufs": -60, "target_lufs": -16.5},
        {"breath": "muted", "studio_sound": False, "mute_lufs": 0, "remove_noise": False},
        {
            "transcription": True,
            "summarize": True,
            "social_content": True,
            "signed_url": "https://x.org/a",
        },
        {
            name: True
            for name in (
                "fillers",
                "long_silences",
                "stutters",
                "mouth_sounds",
                "hesitations",
                "muted",
                "keep_music",
                "normalize",
                "autoeq",
                "merge",
                "automix",
                "send_email",
                "trim",
                "waveform_preview",
                "audio_for_edl",
                "export_timestamps",
            )
        },
    ],
)
def test_valid_configs_are_accepted(emulator: Started, config: dict[str, Any]) -> None:
    _, api = emulator
    create(api, [GOOD_URL], config)


@pytest.mark.parametrize(
    ("style", "shape"),
    [
        ("error", {"error": {"code": "INVALID_API_KEY", "message": "Invalid API key"}}),
        ("detail", {"detail": "Invalid API key"}),
        (
            "detail-error",
            {"detail": {"error": {"code": "INVALID_API_KEY", "message": "Invalid API key"}}},
        ),
        ("message", {"message": "Invalid API key"}),
    ],
)
def test_error_styles(start: Callable[..., Started], style: str, shape: dict[str, Any]) -> None:
    emulator_, _ = start(error_style=style)
    assert fetch("GET", emulator_.base_url + "/account", headers={"X-API-Key": "x"}).json() == shape


def test_mixed_error_style_rotates_through_every_shape(start: Callable[..., Started]) -> None:
    emulator_, _ = start(error_style="mixed")
    bodies = [fetch("GET", emulator_.base_url + "/account").json() for _ in range(8)]
    shapes = [
        next(iter(body)) + ("-error" if isinstance(body.get("detail"), dict) else "")
        for body in bodies
    ]
    assert shapes == ["error", "detail", "detail-error", "message"] * 2


def test_unknown_route_and_wrong_method(emulator: Started) -> None:
    _, api = emulator
    assert api.get("/nothing").status_code == 404
    wrong = api.put("/edits/x")
    assert wrong.status_code == 405 and "DELETE" in wrong.headers["Allow"]


# -- outcomes -----------------------------------------------------------------------------


def test_inputs_that_are_not_media_fail_with_a_plain_message(emulator: Started) -> None:
    _, api = emulator
    text = process(api, b"just some text, not audio at all", name="notes.mp3")
    assert (
        text["status"] == "FAILURE"
        and "not a supported audio or video format" in text["result"]["message"]
    )
    empty = process(api, b"", name="empty.wav")
    assert empty["status"] == "FAILURE" and "empty" in empty["result"]["message"]
    never_put = api.post("/upload", params={"filename": "x.wav"}).json()["signedUrl"]
    missing = finish(api, create(api, [public(never_put)]))
    assert missing["status"] == "FAILURE" and "no such object" in missing["result"]["message"]
    assert "X-Amz" not in missing["result"]["message"]
    outside = finish(api, create(api, [GOOD_URL]))
    assert outside["status"] == "FAILURE" and GOOD_URL in outside["result"]["message"]


@pytest.mark.parametrize(
    ("head", "name"),
    [
        (b"ID3\x04\x00", "a.mp3"),
        (b"\xff\xfb\x90\x00", "a.mp3"),
        (b"fLaC\x00\x00\x00\x22", "a.flac"),
        (b"OggS\x00\x02", "a.opus"),
        (b"\x00\x00\x00\x20ftypM4A ", "a.m4a"),
        (b"\x1a\x45\xdf\xa3\x01", "a.webm"),
        (b"\xff\xf1\x50\x80", "a.aac"),
        (b"FORM\x00\x00\x10\x00AIFF", "a.aiff"),
    ],
)
def test_recognised_media_succeeds(emulator: Started, head: bytes, name: str) -> None:
    _, api = emulator
    data = head + bytes(4000)
    body = process(api, data, name=name)
    assert body["status"] == "SUCCESS", body
    assert body["result"]["download_url"].split("?")[0].endswith("." + name.rsplit(".", 1)[1])
    assert fetch("GET", body["result"]["download_url"]).content == data


def test_optional_results_are_empty_unless_asked(emulator: Started) -> None:
    _, api = emulator
    result = process(api, wav_bytes())["result"]
    for name in (
        "transcription",
        "summarization",
        "social_content",
        "merged_audio_url",
        "timestamps_markers_urls",
    ):
        assert result[name] == [], name


def test_transcript_summary_social_and_markers_when_asked(emulator: Started) -> None:
    _, api = emulator
    config = {
        "transcription": True,
        "summarize": True,
        "social_content": True,
        "export_timestamps": True,
    }
    result = process(api, wav_bytes(seconds=9.0, rate=8000), config)["result"]

    transcript = result["transcription"]
    words = transcript["transcription"]["words"]
    assert words[0]["text"] == "This" and "emulated" in {w["text"] for w in words}
    assert [w["id"] for w in words] == list(range(len(words)))
    assert all(w["start"] < w["end"] <= 9.0 for w in words)
    assert all(a["end"] <= b["start"] for a, b in itertools.pairwise(words))
    paragraphs = transcript["transcription"]["paragraphs"]
    assert [p["speaker"] for p in paragraphs] == ["SPEAKER_00", "SPEAKER_01"][: len(paragraphs)]
    assert [(p["start"], p["end"]) for p in transcript["paragraphs"]] == [
        (p["start"], p["end"]) for p in paragraphs
    ]
    assert "cvsyncd emulator" in " ".join(p["text"] for p in transcript["paragraphs"])

    summary = result["summarization"]
    assert set(summary) == {
        "title",
        "summary",
        "chapters",
        "summaries",
        "key_learnings",
        "summary_of_summary",
        "episode_description",
    }
    assert summary["chapters"][0] == {"start": 0, "title": "Emulated chapter 1"}
    assert set(result["social_content"]) == {"newsletter", "twitter_thread", "linkedin"}

    labels = fetch("GET", result["timestamps_markers_urls"]["timeline_audacity"])
    assert labels.status_code == 200
    lines = [line.split("\t") for line in labels.text.splitlines()]
    assert all(0 <= float(start) < float(end) <= 9.0 for start, end, _ in lines)
    counted = Counter(label.split("_", 1)[1] for _, _, label in lines)
    stats = result["statistics"]
    assert (
        counted
        == Counter(
            {
                "BREATH": stats["BREATH"],
                "DEADAIR": stats["DEADAIR"],
                "STUTTERING": stats["STUTTERING"],
                "MOUTH_SOUND": stats["MOUTH_SOUND"],
                "FILLER_SOUND": stats["FILLER_SOUND"],
            }
        )
        - Counter()
    )
    assert "CUT_FILLER_SOUND" in {label for _, _, label in lines}


def test_statistics_are_deterministic_per_input(emulator: Started) -> None:
    _, api = emulator
    first = process(api, wav_bytes(seconds=3.0))["result"]
    again = process(api, wav_bytes(seconds=3.0))["result"]
    assert first["statistics"] == again["statistics"]
    assert first["filename"] != again["filename"]


def test_export_format_and_video(emulator: Started) -> None:
    _, api = emulator
    result = process(api, wav_bytes(0.5), {"export_format": "mp3", "video": True})["result"]
    assert result["video"] is True
    assert result["download_url"].split("?")[0].endswith(f"/{result['filename']}.mp3")


def test_multitrack_gives_a_zip_and_a_real_mix(emulator: Started) -> None:
    _, api = emulator
    alice, bob = wav_bytes(1.0, freq=440), wav_bytes(0.5, freq=300, amplitude=4000)
    files = [public(upload(api, "alice.wav", alice)), public(upload(api, "bob.wav", bob))]
    result = finish(api, create(api, files, {"merge": True}))["result"]
    archive = zipfile.ZipFile(io.BytesIO(fetch("GET", result["download_url"]).content))
    assert archive.namelist() == ["alice.wav", "bob.wav"]
    assert archive.read("alice.wav") == alice and archive.read("bob.wav") == bob
    [mix_url] = result["merged_audio_url"]
    mix = wav_samples(fetch("GET", mix_url).content)
    a, b = wav_samples(alice), wav_samples(bob)
    assert len(mix) == len(a)
    assert mix[100] == int((a[100] + b[100]) / 2) and mix[-1] == int(a[-1] / 2)


def test_multitrack_mix_of_other_formats_is_a_copy_of_the_first_track(emulator: Started) -> None:
    _, api = emulator
    mp3 = b"ID3\x04" + bytes(5000)
    files = [public(upload(api, "host.mp3", mp3)), public(upload(api, "guest.wav", wav_bytes(0.5)))]
    result = finish(api, create(api, files, {"automix": True}))["result"]
    assert fetch("GET", result["merged_audio_url"][0]).content == mp3
    without = finish(api, create(api, files))["result"]
    assert without["merged_audio_url"] == []


def test_success_without_result_alternates_null_and_empty(start: Callable[..., Started]) -> None:
    _, api = start(success_without_result=3, processing_seconds=0.0)
    edit_id = create(api, [public(upload(api, "a.wav", wav_bytes(0.5)))])
    results = [api.get(f"/edits/{edit_id}").json() for _ in range(4)]
    assert [r["status"] for r in results] == ["SUCCESS"] * 4
    assert [r["result"] for r in results[:3]] == [None, {}, None]
    assert "download_url" in results[3]["result"]


def test_processing_ratio_stretches_processing(start: Callable[..., Started]) -> None:
    _, api = start(processing_seconds=0.0, processing_ratio=0.5)
    edit_id = create(api, [public(upload(api, "a.wav", wav_bytes(1.0, rate=8000)))])
    assert api.get(f"/edits/{edit_id}").json()["status"] != "SUCCESS"
    time.sleep(0.6)
    assert api.get(f"/edits/{edit_id}").json()["status"] == "SUCCESS"


# -- credits, limits, retention -----------------------------------------------------------


def test_credits_run_out_and_failures_are_refunded(start: Callable[..., Started]) -> None:
    _, api = start(credits=2 / 60)  # two minutes; every edit costs at least one
    body = {"input": {"files": [GOOD_URL], "config": {}}}
    create(api, [public(upload(api, "a.wav", wav_bytes(0.5)))])
    doomed = create(api, [GOOD_URL])  # cannot be fetched: fails later
    refused = api.post("/edits", json=body)
    assert refused.status_code == 402  # Payment Required, as the SDK expects
    assert refused.json()["error"]["code"] == "INSUFFICIENT_CREDITS"
    assert api.get("/account").json()["credits_remaining"] == 0
    assert finish(api, doomed)["status"] == "FAILURE"
    assert api.get("/account").json()["credits_remaining"] == pytest.approx(1 / 60, abs=1e-5)
    create(api, [public(upload(api, "b.wav", wav_bytes(0.5)))])
    assert api.post("/edits", json=body).status_code == 402


def test_submissions_are_rate_limited(start: Callable[..., Started]) -> None:
    _, api = start()
    for _ in range(15):
        assert api.post("/upload", params={"filename": "a.wav"}).status_code == 200
        assert (
            api.post("/edits", json={"input": {"files": [GOOD_URL], "config": {}}}).status_code
            == 200
        )
    refused = api.post("/upload", params={"filename": "a.wav"})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "E9001"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert api.get("/edits/x").status_code == 200  # polls have their own budget


def test_polls_are_rate_limited(emulator: Started) -> None:
    _, api = emulator
    statuses = Counter(api.get("/edits/x").status_code for _ in range(301))
    assert statuses == {200: 300, 429: 1}


def test_rate_limits_can_be_switched_off(start: Callable[..., Started]) -> None:
    _, api = start(rate_limits=False)
    assert {api.post("/upload", params={"filename": "a.wav"}).status_code for _ in range(40)} == {
        200
    }


def test_files_expire_after_retention(start: Callable[..., Started]) -> None:
    emulator_, api = start(processing_seconds=0.1, retention_seconds=1.0)
    data = wav_bytes(0.5)
    edit_id = create(api, [public(upload(api, "a.wav", data))])
    url = finish(api, edit_id)["result"]["download_url"]
    assert fetch("GET", url).content == data
    time.sleep(1.1)
    assert api.get(f"/edits/{edit_id}").json()["status"] == "PENDING"
    assert fetch("GET", url).status_code == 404
    assert not list((emulator_.data_dir / "objects").rglob("object"))


# -- the request log ----------------------------------------------------------------------


def test_request_log_records_every_request_without_secrets(emulator: Started) -> None:
    emulator_, api = emulator
    signed = upload(api, "ep1.wav", wav_bytes(0.5))
    edit_id = create(api, [signed], {"transcription": True})
    finish(api, edit_id)
    fetch("GET", emulator_.base_url + "/account", headers={"X-API-Key": "bad"})

    records = emulator_.requests()
    assert emulator_.request_log == emulator_.data_dir / "requests.jsonl"
    assert [r["endpoint"] for r in records[:3]] == ["upload", "put", "create"]
    for record in records:
        assert {
            "ts",
            "method",
            "endpoint",
            "path",
            "status",
            "auth",
            "bytes_in",
            "bytes_out",
            "fault",
            "processed",
        } <= set(record)
    up, put, made = records[:3]
    assert up["filename"] == "ep1.wav" and up["auth"] == "ok" and up["processed"] is True
    assert put["bytes_in"] == len(wav_bytes(0.5)) and put["status"] == 200
    assert made["edit_id"] == edit_id and made["files"] == [public(signed)]
    assert made["config"] == {"transcription": True}
    assert records[-1]["auth"] == "wrong" and records[-1]["status"] == 401
    assert sum(r["endpoint"] == "create" for r in records) == 1
    text = emulator_.request_log.read_text()
    assert KEY not in text and "X-Amz" not in text and "?" not in text
