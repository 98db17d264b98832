"""The service files in contrib/: systemd units verified and rated by systemd-analyze
itself, and the launchd plist read by plistlib."""

from __future__ import annotations

import os
import plistlib
import re
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from cvsyncd.cleanvoice.client import API_TIMEOUT
from cvsyncd.config import DaemonSettings
from cvsyncd.config.apikey import CREDENTIAL_NAME
from tests.conftest import REPO

SYSTEMD = REPO / "contrib" / "systemd"
PLIST = REPO / "contrib" / "launchd" / "ai.cleanvoice.cvsyncd.plist"
# (unit file, the name systemd-analyze is asked about)
UNITS = [("cvsyncd.service", "cvsyncd.service"), ("cvsyncd@.service", "cvsyncd@podcast.service")]
MAX_EXPOSURE = 2.0  # docs/reliability.md, promise 14

Unit = dict[str, list[tuple[str, str]]]


def read_unit(path: Path) -> Unit:
    """Return the sections of a unit file as lists of (key, value), repeats kept."""
    sections: Unit = {}
    current: list[tuple[str, str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
        else:
            key, _, value = line.partition("=")
            current.append((key.strip(), value.strip()))
    return sections


def values(unit: Unit, section: str, key: str) -> list[str]:
    return [value for name, value in unit[section] if name == key]


def value(unit: Unit, section: str, key: str) -> str:
    (found,) = values(unit, section, key)
    return found


def seconds(timespan: str) -> float:
    """A systemd time span such as ``180s``, ``3min`` or ``2min 30s`` in seconds."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", timespan):
        total += float(number) * units[unit]
    return total


# -- what the units must say ----------------------------------------------------------------


@pytest.mark.parametrize(("name", "_instance"), UNITS)
def test_the_unit_is_a_notify_service_with_watchdog_and_reload(name: str, _instance: str) -> None:
    unit = read_unit(SYSTEMD / name)
    assert value(unit, "Service", "Type") == "notify"
    assert value(unit, "Service", "NotifyAccess") == "main"
    assert seconds(value(unit, "Service", "WatchdogSec")) >= 10
    assert value(unit, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert value(unit, "Service", "Restart") == "on-failure"
    assert value(unit, "Service", "RestartPreventExitStatus") == "2"  # a config error


@pytest.mark.parametrize(("name", "_instance"), UNITS)
def test_the_stop_timeout_covers_the_drain(name: str, _instance: str) -> None:
    unit = read_unit(SYSTEMD / name)
    (grace,) = [f.default for f in fields(DaemonSettings) if f.name == "stop_grace_seconds"]
    assert isinstance(grace, float)
    create_in_flight = (
        (API_TIMEOUT.pool or 0) + (API_TIMEOUT.connect or 0) + (API_TIMEOUT.read or 0)
    )
    assert seconds(value(unit, "Service", "TimeoutStopSec")) > grace + create_in_flight


@pytest.mark.parametrize(("name", "_instance"), UNITS)
def test_the_unit_gives_the_daemon_what_it_needs(name: str, _instance: str) -> None:
    unit = read_unit(SYSTEMD / name)
    command = value(unit, "Service", "ExecStart").split()
    assert command[1:3] == ["run", "-c"] and command[3].startswith("/etc/cvsyncd/")
    credential, _, source = value(unit, "Service", "LoadCredential").partition(":")
    assert credential == CREDENTIAL_NAME and source.startswith("/etc/cvsyncd/")
    assert value(unit, "Service", "StateDirectory").startswith("cvsyncd")
    assert value(unit, "Service", "StateDirectoryMode") == "0700"
    assert value(unit, "Service", "UMask") == "0027"
    # sd_notify and the journal are AF_UNIX; the API is the internet
    families = value(unit, "Service", "RestrictAddressFamilies").split()
    assert set(families) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert values(unit, "Service", "ReadWritePaths")
    assert value(unit, "Service", "ProtectSystem") == "strict"
    assert value(unit, "Service", "CapabilityBoundingSet") == ""


def test_the_template_differs_only_in_its_names() -> None:
    single, template = (
        read_unit(SYSTEMD / "cvsyncd.service"),
        read_unit(SYSTEMD / "cvsyncd@.service"),
    )
    per_instance = {
        "Description",
        "ExecStart",
        "StateDirectory",
        "LoadCredential",
        "ReadWritePaths",
    }
    for section in single:
        same = [(k, v) for k, v in single[section] if k not in per_instance]
        assert same == [(k, v) for k, v in template[section] if k not in per_instance], section
    assert value(template, "Service", "ExecStart").endswith("/etc/cvsyncd/%i.toml")
    assert value(template, "Service", "StateDirectory") == "cvsyncd/%i"
    assert "%i" in value(template, "Service", "LoadCredential")


# -- what systemd itself says about them ----------------------------------------------------


def systemd_analyze() -> str:
    """Return the path of systemd-analyze, or skip the test, saying why."""
    program = shutil.which("systemd-analyze")
    if program is None:
        pytest.skip("systemd-analyze is not installed (it comes with systemd, on Linux)")
    out = subprocess.run([program, "--version"], capture_output=True, text=True, check=False)
    found = re.match(r"systemd (\d+)", out.stdout)
    if not found or int(found.group(1)) < 250:
        pytest.skip(f"systemd-analyze is too old for --offline (needs systemd 250): {out.stdout!r}")
    return program


def unit_copy(tmp_path: Path, name: str) -> Path:
    """Copy a unit into ``tmp_path``, its programs that are not installed here replaced by
    one that is (verify checks that ExecStart= can run); return the copy's folder."""
    text = (SYSTEMD / name).read_text(encoding="utf-8")

    def existing(match: re.Match[str]) -> str:
        program = match.group(2)
        return match.group(1) + (program if os.access(program, os.X_OK) else sys.executable)

    (tmp_path / name).write_text(re.sub(r"^(Exec\w+=[-@:+!]*)(\S+)", existing, text, flags=re.M))
    return tmp_path


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(("name", "instance"), UNITS)
def test_systemd_analyze_verify_is_clean(tmp_path: Path, name: str, instance: str) -> None:
    program = systemd_analyze()
    folder = unit_copy(tmp_path, name)
    result = run([program, "verify", "--man=no", str(folder / instance)], folder)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize(("name", "instance"), UNITS)
def test_systemd_analyze_security_exposure(tmp_path: Path, name: str, instance: str) -> None:
    program = systemd_analyze()
    folder = unit_copy(tmp_path, name)
    result = run(
        [program, "security", "--offline=yes", "--no-pager", str(folder / instance)], folder
    )
    assert result.returncode == 0, result.stderr
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout
    assert float(found.group(1)) <= MAX_EXPOSURE, result.stdout


# -- launchd --------------------------------------------------------------------------------


def test_the_launchd_plist() -> None:
    with PLIST.open("rb") as stream:
        plist: dict[str, Any] = plistlib.load(stream)
    assert plist["Label"] == PLIST.stem == "ai.cleanvoice.cvsyncd"
    program, *arguments = plist["ProgramArguments"]
    assert program.endswith("/bin/cvsyncd") and arguments[:2] == ["run", "-c"]
    assert arguments[2].endswith(".toml")
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}  # a clean stop stays stopped
    assert plist["ProcessType"] == "Background"
    assert plist["StandardOutPath"] and plist["StandardErrorPath"]
    # the key never goes into a file every user can read
    assert "CLEANVOICE_API_KEY" not in plist.get("EnvironmentVariables", {})
    unit = read_unit(SYSTEMD / "cvsyncd.service")
    assert plist["ExitTimeOut"] >= seconds(value(unit, "Service", "TimeoutStopSec"))
    # launchd expands nothing: every path is absolute
    paths = [program, arguments[2], plist["StandardOutPath"], plist["StandardErrorPath"]]
    assert all(path.startswith("/") for path in paths)
