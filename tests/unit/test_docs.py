"""The docs name real things: every test cited as a proof exists, every module a doc or a
package map names exists, and the README's map of packages is the import contract's."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = "cli|config|daemon|inbox|jobs|pipeline|cleanvoice|outbox|notify|emulator"
DOCS = [*sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]


def test_every_cited_test_exists() -> None:
    text = (REPO / "docs" / "reliability.md").read_text(encoding="utf-8")
    cited = sorted(set(re.findall(r"(tests/[\w/]+\.py)::(\w+)", text)))
    assert len(cited) >= 20  # every promise cites at least one
    missing = [
        f"{path}::{name}"
        for path, name in cited
        if not (REPO / path).is_file()
        or not re.search(rf"^(async )?def {name}\(", (REPO / path).read_text(), re.M)
    ]
    assert not missing, f"docs/reliability.md cites tests that do not exist: {missing}"


def test_what_the_container_doc_says_was_exercised_exists() -> None:
    text = (REPO / "docs" / "container.md").read_text(encoding="utf-8")
    cited = sorted(set(re.findall(r"(tests/[\w/]+\.py)::(\w+)", text)))
    assert len(cited) >= 4
    missing = [
        f"{path}::{name}"
        for path, name in cited
        if not re.search(rf"^def {name}\(", (REPO / path).read_text(), re.M)
    ]
    assert not missing, f"docs/container.md cites tests that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_module_path_a_doc_names_exists(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    paths = set(re.findall(r"`((?:cvsyncd|tests|bench|contrib)/[\w/.@-]+)`", text))
    # a module or a package named inside ours (`pipeline/intake.py`, `outbox/render/`);
    # `inbox/show/ep1.wav` is a user's folder, not ours
    inside = re.findall(rf"`((?:{PACKAGES})/(?:[\w/]*\.py|[\w/]*/)?)`", text)
    paths |= {f"cvsyncd/{p}" for p in inside}
    missing = sorted(p for p in paths if not (REPO / p.rstrip("/")).exists())
    assert not missing, f"{doc} names what does not exist: {missing}"


def test_the_readme_map_lists_the_layers_of_the_contract() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    [layers] = [
        c["layers"] for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"
    ]
    packages = [
        name.strip().removeprefix("cvsyncd.")
        for layer in layers[:-1]  # the last layer is the foundation's single modules
        for name in layer.split("|")
    ]
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## How it is built", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `(\w+)/` \|", section, re.M)
    assert [p for p in listed if p != "emulator"] == packages
    architecture = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    for package in packages:
        assert f"{package}/" in architecture, package


def test_ci_runs_the_readme_test_command_which_is_run_tests_default() -> None:
    """One test command in three places: the README's, the line .ci/run runs, and what a
    bare ./run-tests runs."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Running the tests") :]
    command = re.search(r"```sh\n(\./run-tests [^\n]+)\n```", section)
    assert command is not None, "the README gives no ./run-tests command"
    ci_lines = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert command.group(1) in ci_lines
    assert "pytest" in command.group(1)
    default = re.search(r"set -- (.+)$", (REPO / "run-tests").read_text(), re.M)
    assert default is not None
    assert f"./run-tests {default.group(1)}" == command.group(1)
