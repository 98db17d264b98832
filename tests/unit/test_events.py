"""Log events have stable names: every call in the code logs a name listed in events.py,
every listed name has words, and the rendered lines carry both."""

from __future__ import annotations

import ast
import io
import json
import re
from pathlib import Path

import structlog

from cvsyncd import events as ev
from cvsyncd.daemon import logs
from tests.conftest import REPO

LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}
NAME = re.compile(r"[a-z]+\.[a-z_]+")


def log_calls() -> list[tuple[str, ast.expr]]:
    """(where, first argument) of every structlog call in the package (not the emulator,
    which logs HTTP requests its own way)."""
    found = []
    for path in sorted((REPO / "cvsyncd").rglob("*.py")):
        if "emulator" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute | ast.IfExp)
                and node.args
            ):
                func = node.func
                methods = [func] if isinstance(func, ast.Attribute) else [func.body, func.orelse]
                if all(
                    isinstance(m, ast.Attribute)
                    and m.attr in LEVELS
                    and "log" in ast.unparse(m.value).lower()
                    for m in methods
                ):
                    where = f"{path.relative_to(REPO)}:{node.lineno}"
                    found.append((where, node.args[0]))
    return found


def names_in(expr: ast.expr) -> list[str] | None:
    """The event names an argument can take (``ev.X``, or either side of ``a if c else b``),
    or None if it is anything else (a sentence, a variable)."""
    if isinstance(expr, ast.IfExp):
        left, right = names_in(expr.body), names_in(expr.orelse)
        return None if left is None or right is None else left + right
    if isinstance(expr, ast.Attribute) and ast.unparse(expr.value) == "ev":
        return [expr.attr]
    return None


def test_every_log_call_names_a_listed_event() -> None:
    calls = log_calls()
    assert len(calls) > 60  # the scan finds the calls (a broken scan would pass vacuously)
    wrong = []
    used: set[str] = set()
    for where, arg in calls:
        names = names_in(arg)
        if names is None or not all(hasattr(ev, n) for n in names):
            wrong.append(f"{where}: {ast.unparse(arg)}")
        else:
            used.update(getattr(ev, n) for n in names)
    assert not wrong, "log an events.py constant, not a sentence:\n" + "\n".join(wrong)
    listed = {v for k, v in vars(ev).items() if k.isupper() and isinstance(v, str)}
    assert listed - used == set(), "listed but never logged"


def test_every_name_is_stable_and_has_words() -> None:
    listed = {k: v for k, v in vars(ev).items() if k.isupper() and isinstance(v, str)}
    for constant, name in listed.items():
        assert NAME.fullmatch(name), constant
        assert constant == name.upper().replace(".", "_"), f"{constant} = {name!r}"
        words = ev.message_of(name)
        assert words and words == words.strip(), name
    assert len(set(listed.values())) == len(listed)  # no two constants share a name
    assert set(ev.MESSAGES) == set(listed.values())


def configured_line(json_lines: bool) -> str:
    out = io.StringIO()
    logs.configure("info", out, json=json_lines, journal=False)
    try:
        structlog.get_logger("test").info(ev.JOB_DONE, job=3, path="a.wav")
    finally:
        structlog.reset_defaults()
    return out.getvalue()


def test_json_lines_carry_the_name_and_the_words() -> None:
    line = json.loads(configured_line(json_lines=True))
    assert line["event"] == "job.done"
    assert line["message"] == "done"
    assert (line["job"], line["path"], line["level"]) == (3, "a.wav", "info")


def test_a_terminal_line_leads_with_the_words() -> None:
    line = configured_line(json_lines=False)
    assert "done [job.done]" in line and "job=3" in line
    assert "message=" not in line


def test_the_docs_list_every_event() -> None:
    text = (REPO / "docs" / "service.md").read_text(encoding="utf-8")
    missing = [name for name in ev.MESSAGES if f"`{name}`" not in text]
    assert not missing, f"docs/service.md does not list {missing}"


def test_a_module_that_logs_imports_the_names(tmp_path: Path) -> None:
    # the scan sees a sentence where a name belongs (so the first test can fail)
    bad = tmp_path / "bad.py"
    bad.write_text('import structlog\nlog = structlog.get_logger()\nlog.info("done")\n')
    [call] = [
        node
        for node in ast.walk(ast.parse(bad.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        if node.func.attr == "info"
    ]
    assert names_in(call.args[0]) is None
