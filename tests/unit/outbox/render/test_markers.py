"""Edit markers: the Audacity label file read leniently, the REAPER and Audition CSVs
and the cut list read back, and marker file names that a server cannot abuse."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cvsyncd.outbox.render import RenderContext, marker_downloads, render
from cvsyncd.outbox.render.markers import marker_extension, parse_labels, safe_name
from tests.unit.outbox.render.test_cases import empty_fields, emulator_case, multi_speaker_case


def reaper_seconds(value: str) -> float:
    hours, minutes, secs = value.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(secs)


def audition_seconds(value: str) -> float:
    parts = [float(p) for p in value.split(":")]
    return sum(p * 60**i for i, p in enumerate(reversed(parts)))


def test_reaper_csv_reads_back() -> None:
    case = multi_speaker_case()
    text = render(".markers.reaper.csv", case.result, case.context).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["#", "Name", "Start", "End", "Length"]
    assert [r["#"] for r in rows] == ["R1", "R2", "M1", "R3", "R4"]
    labels = parse_labels(case.marker_files["timeline_audacity"])
    for row, label in zip(rows, labels, strict=True):
        assert row["Name"] == label.text
        assert reaper_seconds(row["Start"]) == pytest.approx(label.start / 1000)
        if row["#"].startswith("R"):
            assert reaper_seconds(row["End"]) == pytest.approx(label.end / 1000)
            length = reaper_seconds(row["End"]) - reaper_seconds(row["Start"])
            assert reaper_seconds(row["Length"]) == pytest.approx(length)
        else:
            assert row["End"] == row["Length"] == ""
    assert rows[2]["Name"] == "NOTE, check levels"  # a comma survives the CSV quoting


def test_audition_csv_reads_back() -> None:
    case = emulator_case(3700.0)
    text = render(".markers.audition.csv", case.result, case.context).decode()
    rows = list(csv.DictReader(io.StringIO(text), delimiter="\t"))
    labels = parse_labels(case.marker_files["timeline_audacity"])
    assert len(rows) == len(labels) > 100
    for row, label in zip(rows, labels, strict=True):
        assert (row["Time Format"], row["Type"], row["Name"]) == ("decimal", "Cue", label.text)
        assert audition_seconds(row["Start"]) == pytest.approx(label.start / 1000)
        assert audition_seconds(row["Duration"]) == pytest.approx((label.end - label.start) / 1000)
    assert rows[-1]["Start"].count(":") == 2  # past an hour: h:mm:ss.mmm


def test_cut_list() -> None:
    case = multi_speaker_case()
    cuts = json.loads(render(".markers.cuts.json", case.result, case.context))
    assert cuts[:2] == [
        {"start": 1.02, "end": 1.25, "kind": "breath", "action": "mute", "label": "MUTE_BREATH"},
        {
            "start": 7.5,
            "end": 7.91,
            "kind": "filler_sound",
            "action": "cut",
            "label": "CUT_FILLER_SOUND",
        },
    ]
    assert all(c["action"] in ("cut", "mute") for c in cuts)
    assert "NOTE, check levels" not in {c["label"] for c in cuts}  # not an edit


def test_emulator_muted_labels_become_mutes() -> None:
    case = emulator_case(300.0, muted=True)
    cuts = json.loads(render(".markers.cuts.json", case.result, case.context))
    assert cuts and {c["action"] for c in cuts} == {"mute"}


def test_label_file_leniency_and_refusal() -> None:
    text = "\ufeff\r\n0,5\t1,25\tCUT_FILLER_SOUND\r\n\\\t100\t200\r\n\r\n2\t1.5\tswapped\r\n"
    labels = parse_labels(text)
    assert [(x.start, x.end, x.text) for x in labels] == [
        (500, 1250, "CUT_FILLER_SOUND"),
        (1500, 2000, "swapped"),
    ]
    assert parse_labels("") == []
    with pytest.raises(ValueError, match="line 2 of the label file"):
        parse_labels("1\t2\tA\nhello world\n")
    context = RenderContext("x", "x", markers={"timeline_audacity": "garbage"})
    with pytest.raises(ValueError, match="line 1"):
        render(".markers.reaper.csv", empty_fields(), context)


def test_marker_downloads_mapping_list_and_empty() -> None:
    assert marker_downloads(
        {"timestamps_markers_urls": {"timeline_audacity": "https://h/t.txt?s=1"}}
    ) == [("timeline_audacity", "https://h/t.txt?s=1")]
    # a list: named after each file (a known name inside it wins), else by place
    assert marker_downloads({"timestamps_markers_urls": ["https://h/a", "http://h/b"]}) == [
        ("a", "https://h/a"),
        ("b", "http://h/b"),
    ]
    assert marker_downloads(
        {
            "timestamps_markers_urls": [
                "https://h/98d8_timeline_audacity.txt?X-Amz-Signature=s",
                "https://example.com/timestamps.json",
                "https://h/",
                "https://h/timestamps.json",
                "https://h/c1c8ba608c14422c948e220a9650c029_cuts.json",
            ]
        }
    ) == [
        ("timeline_audacity", "https://h/98d8_timeline_audacity.txt?X-Amz-Signature=s"),
        ("timestamps", "https://example.com/timestamps.json"),
        ("3", "https://h/"),
        ("timestamps_2", "https://h/timestamps.json"),
        ("cuts", "https://h/c1c8ba608c14422c948e220a9650c029_cuts.json"),
    ]
    empties: tuple[Any, ...] = ([], None, "", {})
    for empty in empties:
        assert marker_downloads({"timestamps_markers_urls": empty}) == []
    assert marker_downloads({}) == []


def test_marker_downloads_refuse_dangerous_names_and_urls() -> None:
    value = {
        "../../etc/passwd": "https://h/1",
        "a/b": "https://h/2",
        "a_b": "https://h/3",
        "\x00": "https://h/4",
        "..": "https://h/5",
        "ok": "file:///etc/passwd",
        "none": None,
        "broken": "http://[::1",
        "x" * 300: "https://h/6",
    }
    downloads = marker_downloads({"timestamps_markers_urls": value})
    assert downloads == [
        ("etc_passwd", "https://h/1"),
        ("a_b", "https://h/2"),
        ("a_b_2", "https://h/3"),
        ("4", "https://h/4"),
        ("5", "https://h/5"),
        ("x" * 64, "https://h/6"),
    ]


@given(st.text())
def test_safe_names_are_safe(name: str) -> None:
    safe = safe_name(name)
    assert all(c.isascii() and (c.isalnum() or c in "_-") for c in safe)
    assert "/" not in safe and ".." not in safe and "\x00" not in safe and len(safe) <= 64


@pytest.mark.parametrize(
    ("url", "ext"),
    [
        ("https://example.com/timestamps.json", "json"),
        ("https://h/x_timeline_audacity.txt?sig=1", "txt"),
        ("https://h/markers.CSV", "csv"),
        ("https://h/markers", "txt"),  # no extension at all
        ("https://h/evil.exe", "txt"),  # only text formats keep their own
        ("https://h/a.json/", "txt"),
    ],
)
def test_a_marker_file_keeps_its_own_text_extension(url: str, ext: str) -> None:
    assert marker_extension(url) == ext
