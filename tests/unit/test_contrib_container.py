"""The container files agree with each other and with the entrypoint (the image itself is
built only where a Docker engine runs: tests/e2e/test_container.py)."""

from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ElementTree

import yaml

from tests.conftest import REPO

DOCKER = REPO / "contrib" / "docker"


def dockerfile() -> str:
    return (DOCKER / "Dockerfile").read_text(encoding="utf-8")


def test_the_entrypoint_is_posix_sh() -> None:
    # dash is the strictest common /bin/sh (Debian's, the image's)
    proc = subprocess.run(["dash", "-n", str(DOCKER / "entrypoint.sh")], capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert (DOCKER / "entrypoint.sh").read_text().startswith("#!/bin/sh\n")


def test_the_dockerfile_has_what_the_issue_and_the_docs_promise() -> None:
    text = dockerfile()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.\d+-slim-\w+$", text, re.M)
    assert "pip wheel" in text and '[web,alerts]"' in text  # the app as a wheel, alerts in
    assert "useradd --uid 1000" in text  # the non-root runtime user
    assert re.search(r"^VOLUME /config$", text, re.M)
    assert 'CMD ["/usr/local/bin/cvsyncd-entrypoint", "health"]' in text
    assert 'ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/cvsyncd-entrypoint"]' in text
    assert "COPY contrib/docker/entrypoint.sh /usr/local/bin/cvsyncd-entrypoint" in text
    for name in ("PUID=1000", "PGID=1000", "UMASK=022", "CVSYNCD_CONFIG=/config/config.toml"):
        assert name in text


def test_the_build_context_keeps_what_the_dockerfile_copies() -> None:
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile(), re.M)
    sources = {source for line in copied for source in line.split()}
    assert sources <= kept, sources - kept
    for source in sources:
        assert (REPO / source).exists(), source


def test_compose_builds_this_repository_and_maps_config_and_data() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    service = compose["services"]["cvsyncd"]
    context = (DOCKER / service["build"]["context"]).resolve()
    assert context == REPO.resolve()
    assert (context / service["build"]["dockerfile"]).is_file()
    targets = {volume.split(":")[1] for volume in service["volumes"]}
    assert targets == {"/config", "/data"}
    assert {"PUID", "PGID", "UMASK", "TZ"} <= set(service["environment"])
    assert service["ports"] == ["8750:8750"]
    assert service["stop_grace_period"] == "3m"  # like the systemd unit's TimeoutStopSec


def test_the_unraid_template_maps_the_same_places_and_hides_the_key() -> None:
    root = ElementTree.parse(REPO / "contrib" / "unraid" / "cvsyncd.xml").getroot()
    assert root.tag == "Container" and root.findtext("Repository") == "cvsyncd:latest"
    configs = {c.get("Target"): c for c in root.iter("Config")}
    assert set(configs) == {
        "/config",
        "/data",
        "8750",
        "PUID",
        "PGID",
        "UMASK",
        "TZ",
        "CLEANVOICE_API_KEY",
    }
    assert configs["CLEANVOICE_API_KEY"].get("Mask") == "true"
    assert configs["/config"].get("Type") == "Path" and configs["8750"].get("Type") == "Port"
    assert "--stop-timeout 180" in (root.findtext("ExtraParams") or "")
    assert root.findtext("WebUI") == "http://[IP]:[PORT:8750]/"
