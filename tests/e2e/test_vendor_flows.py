"""Clients nobody here wrote, against the emulator in varied mode.

- The official Python SDK's **own integration tests** (``tests/test_integration.py`` of the
  ``cleanvoice-sdk`` 2.0.5 source distribution, written to run against the live service
  when given an API key and a base URL), unchanged.
- The **curl flow of the public docs**: get a signed URL, ``PUT -T`` the file, create an
  edit with that URL, poll it, download the result, delete the edit, read the account.

If these pass, the emulator speaks the API the way the vendor's own code and docs expect,
in every shape varied mode serves, and not merely the way cvsyncd's client does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from cvsyncd.emulator import Emulator
from tests.conftest import REPO, fetch, wav_bytes

pytestmark = pytest.mark.e2e

SDK = "cleanvoice-sdk==2.0.5"
KEY = "vendor-flow-key"
PIP_DOWNLOAD = (
    sys.executable,
    "-m",
    "pip",
    "download",
    "--quiet",
    "--no-deps",
    "--no-binary",
    ":all:",
)
PYTEST = (sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "integration")
# This one test resolves an outside host name on purpose (an invalid base URL); tests here
# talk to 127.0.0.1 only.
OUTSIDE_HOST_TESTS = (
    "tests/test_integration.py::TestCleanvoiceIntegration::test_different_base_urls",
)


@pytest.fixture(scope="session")
def sdk_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SDK's source distribution, unpacked (downloaded once into ``.cache/``)."""
    cache = REPO / ".cache" / "sdist"
    archives = sorted(cache.glob("cleanvoice_sdk-2.0.5.tar.gz"))
    if not archives:
        cache.mkdir(parents=True, exist_ok=True)
        got = subprocess.run(
            [*PIP_DOWNLOAD, "--dest", str(cache), SDK],
            capture_output=True,
            text=True,
            timeout=300,
        )
        archives = sorted(cache.glob("cleanvoice_sdk-2.0.5.tar.gz"))
        if not archives:
            reason = f"cannot download the {SDK} source distribution: {got.stderr[-500:]}"
            if os.environ.get("CI"):
                pytest.fail(reason)  # CI has the package index: this must run there
            pytest.skip(reason)
    unpacked = tmp_path_factory.mktemp("sdk")
    with tarfile.open(archives[0]) as archive:
        archive.extractall(unpacked, filter="data")
    return unpacked / "cleanvoice_sdk-2.0.5"


@pytest.fixture
def varied(tmp_path: Path) -> Iterator[Emulator]:
    with Emulator(tmp_path / "emulator", api_key=KEY, processing_seconds=1.0, vary=2026) as emu:
        yield emu


def upload_with_curl(tmp_path: Path, base_url: str, name: str, data: bytes) -> str:
    """The docs' two upload steps, with curl; return the signed URL."""
    source = tmp_path / name
    source.write_bytes(data)
    answer = curl("-X", "POST", f"{base_url}/upload?filename={name}", "-H", f"X-API-Key: {KEY}")
    signed = json.loads(answer)["signedUrl"]
    curl("-X", "PUT", "-T", str(source), "-L", signed)
    return str(signed)


def curl(*args: str) -> str:
    done = subprocess.run(
        ["curl", "--silent", "--show-error", "--fail-with-body", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"curl {' '.join(args)}: {done.stderr} {done.stdout}"
    return done.stdout


def test_the_sdks_own_integration_tests_pass(
    sdk_source: Path, varied: Emulator, tmp_path: Path
) -> None:
    fixtures = sdk_source / "testfiles"  # where its local-upload tests look
    fixtures.mkdir()
    (fixtures / "test.wav").write_bytes(wav_bytes(3.0))
    (fixtures / "test.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00" + bytes(8000))
    answer = fetch(
        "POST",
        f"{varied.base_url}/upload",
        params={"filename": "sdk-test-audio.wav"},
        headers={"X-API-Key": KEY},
    )
    signed = answer.json()["signedUrl"]
    assert fetch("PUT", signed, content=wav_bytes(2.0)).status_code == 200
    report = tmp_path / "report.xml"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CLEANVOICE", "CVSYNCD"))},
        "CLEANVOICE_API_KEY": KEY,
        "CLEANVOICE_BASE_URL": varied.base_url,
        "CLEANVOICE_TEST_AUDIO_URL": signed.split("?")[0],
    }
    deselect = [arg for test in OUTSIDE_HOST_TESTS for arg in ("--deselect", test)]
    run = subprocess.run(
        [*PYTEST, "tests/test_integration.py", f"--junitxml={report}", *deselect],
        cwd=sdk_source,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    counts = {k: int(suite.get(k, "0")) for k in ("tests", "failures", "errors", "skipped")}
    assert counts["failures"] == counts["errors"] == counts["skipped"] == 0, counts
    assert counts["tests"] >= 20, counts  # the whole file ran, not a handful
    creates = [r for r in varied.requests() if r["endpoint"] == "create"]
    assert any(r["status"] == 400 for r in creates)  # its invalid-URL test was refused
    assert len(varied.variants.report()) >= 5  # the answers really varied


def test_the_docs_curl_flow(varied: Emulator, tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed (.ci/run installs it)")
    base = varied.base_url
    account = json.loads(curl(f"{base[: -len('/v2')]}/v2/account", "-H", f"X-API-Key: {KEY}"))
    assert isinstance(account, dict) and account
    data = wav_bytes(2.0)
    signed = upload_with_curl(tmp_path, base, "my_media.wav", data)
    body = json.dumps({"input": {"files": [signed], "config": {}}})
    created = curl(
        "-X", "POST", f"{base}/edits", "-H", f"X-API-Key: {KEY}",
        "-H", "Content-Type: application/json", "-d", body,
    )  # fmt: skip
    edit_id = json.loads(created)["id"]
    deadline = time.monotonic() + 30
    while True:
        poll = json.loads(curl(f"{base}/edits/{edit_id}", "-H", f"X-Api-Key: {KEY}"))
        result = poll.get("result")
        if poll["status"] == "SUCCESS" and isinstance(result, dict) and result.get("download_url"):
            break
        assert poll["status"] != "FAILURE", poll
        assert time.monotonic() < deadline, f"still {poll['status']} after 30 s"
        time.sleep(0.5)
    cleaned = tmp_path / "cleaned.wav"
    curl("-o", str(cleaned), result["download_url"])
    assert cleaned.read_bytes() == data
    curl("-X", "DELETE", f"{base}/edits/{edit_id}", "-H", f"X-API-Key: {KEY}")
    gone = json.loads(curl(f"{base}/edits/{edit_id}", "-H", f"X-Api-Key: {KEY}"))
    assert gone["status"] == "PENDING"  # an unknown id, as the SDK's own test expects
