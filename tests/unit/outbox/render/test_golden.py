"""Golden files: every renderer's output for realistic results, compared byte for byte.

The expected files live in ``golden/<case>/`` beside this file, one per rendered output, beside
``suffixes.txt`` (what :func:`derived_suffixes` asked for). For a ``.docx`` the golden
file is its ``word/document.xml``, since the zip around it depends on the zlib version.
After an intended change, regenerate them and review the diff by eye::

    CVSYNCD_REGOLD=1 .venv/bin/pytest tests/unit/outbox/render/test_golden.py
    git diff tests/unit/outbox/render/golden
"""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from cvsyncd.outbox.render import derived_suffixes, render
from tests.unit.outbox.render.test_cases import GOLDEN_CASES, Case

GOLDEN = Path(__file__).parent / "golden"
REGOLD = os.environ.get("CVSYNCD_REGOLD") == "1"


def rendered(case: Case) -> dict[str, bytes]:
    """The files a case renders to, by golden file name."""
    suffixes = derived_suffixes(case.result, case.formats, case.marker_files)
    files = {"suffixes.txt": "".join(f"{s}\n" for s in suffixes).encode()}
    for suffix in suffixes:
        data = render(suffix, case.result, case.context)
        name = case.context.stem + suffix
        if suffix.endswith(".docx"):
            with zipfile.ZipFile(io.BytesIO(data)) as package:
                files[name + ".document.xml"] = package.read("word/document.xml")
        else:
            files[name] = data
    return files


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_outputs_match_the_golden_files(name: str) -> None:
    files = rendered(GOLDEN_CASES[name]())
    folder = GOLDEN / name
    if REGOLD:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for file_name, data in files.items():
            (folder / file_name).write_bytes(data)
    expected = {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.is_dir() else {}
    hint = (
        "if the change is intended: CVSYNCD_REGOLD=1 pytest tests/unit/outbox/render/test_golden.py"
    )
    assert sorted(files) == sorted(expected), hint
    for file_name, data in files.items():
        assert data == expected[file_name], (
            f"tests/unit/outbox/render/golden/{name}/{file_name} differs; {hint}"
        )


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_rendering_is_deterministic(name: str) -> None:
    case = GOLDEN_CASES[name]()
    for suffix in derived_suffixes(case.result, case.formats, case.marker_files):
        first = render(suffix, case.result, case.context)
        again = render(suffix, GOLDEN_CASES[name]().result, case.context)
        assert first == again, suffix


def test_text_outputs_are_utf8_with_unix_line_ends() -> None:
    for name in GOLDEN_CASES:
        for file_name, data in rendered(GOLDEN_CASES[name]()).items():
            text = data.decode("utf-8")
            assert "\r" not in text, file_name
            assert text == "" or text.endswith("\n"), file_name
            assert not text.startswith("\ufeff"), file_name
