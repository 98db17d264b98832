"""Ready to publish, end to end: the daemon writes the episode's title, description, show,
cover and chapters into the cleaned MP3 itself; the audio is what Cleanvoice sent; a crash
between tagging and the rename changes nothing; ``cvsyncd render`` tags again."""

from __future__ import annotations

from pathlib import Path

import pytest
from mutagen.id3 import ID3

from cvsyncd.emulator import Emulator
from cvsyncd.outbox.files import is_temp_name
from tests.conftest import Setup, creates
from tests.media import make_audio, make_jpeg, needs_ffmpeg, probe, without_id3v2

pytestmark = [pytest.mark.e2e, needs_ffmpeg]

SUMMARIZE = "transcription = true\nsummarize = true"


def test_the_cleaned_mp3_carries_title_show_cover_and_chapters(
    tmp_path: Path, emulator: Emulator
) -> None:
    setup = Setup(
        tmp_path,
        emulator.base_url,
        after="keep",
        preset=SUMMARIZE,
        extra_folder='show = "The Night Desk"\n',
    )
    cover = make_jpeg(setup.inbox / "cover.jpg")  # in the inbox: becomes the artwork
    recording = make_audio(setup.inbox / "show" / "ep12.mp3", seconds=30)
    daemon = setup.daemon()
    try:
        done = daemon.wait_for_event("job.done", path="show/ep12.mp3", timeout=60)
        tagged = daemon.wait_for_event("job.tagged")
    finally:
        assert daemon.stop() == 0
    assert done and "cover" in tagged["parts"]
    [job] = setup.jobs()  # the cover in the inbox was not taken as a recording
    out = setup.outbox / "show" / "ep12.mp3"
    id3 = ID3(out)
    assert id3.version == (2, 4, 0)
    assert id3["TIT2"].text[0].startswith("Emulated episode (")
    assert "cvsyncd emulator" in id3.getall("COMM")[0].text[0]
    assert id3["TALB"].text == ["The Night Desk"]
    assert id3.getall("APIC")[0].data == cover.read_bytes()
    [toc] = id3.getall("CTOC")
    assert toc.child_element_ids and len(id3.getall("CHAP")) == len(toc.child_element_ids)
    chapters = probe(out, "-show_chapters")["chapters"]
    assert chapters[0]["tags"]["title"] == "Emulated chapter 1"
    # the emulator returns the uploaded bytes: the audio is exactly what was sent
    assert without_id3v2(out.read_bytes()) == without_id3v2(recording.read_bytes())
    assert len(creates(emulator)) == 1

    # a change of settings, then `cvsyncd render`: the file is tagged again, atomically
    requests = len(emulator.requests())
    setup.config.write_text(
        setup.config.read_text().replace('show = "The Night Desk"', 'show = "Day Desk"')
        + 'embed = ["tags"]\n'
    )
    proc = setup.cli("render", "-c", str(setup.config), str(job["id"]))
    assert proc.returncode == 0, proc.stderr
    id3 = ID3(out)
    assert id3["TALB"].text == ["Day Desk"]
    assert not id3.getall("CHAP") and not id3.getall("APIC")  # no longer wanted
    assert without_id3v2(out.read_bytes()) == without_id3v2(recording.read_bytes())
    assert len(emulator.requests()) == requests  # no API call
    assert not [p for p in setup.outbox.rglob("*") if is_temp_name(p.name)]


def test_a_kill_after_tagging_before_the_rename_leaves_one_whole_tagged_file(
    tmp_path: Path, emulator: Emulator
) -> None:
    setup = Setup(tmp_path, emulator.base_url, after="keep", preset=SUMMARIZE)
    recording = make_audio(setup.inbox / "ep.mp3", seconds=10)
    crashed = setup.daemon(env={"CVSYNCD_FAILPOINTS": "fetch.tagged"})
    assert crashed.proc.wait(timeout=60) == -9, crashed.log_text
    crashed.kill()
    assert not (setup.outbox / "ep.mp3").exists()  # the tagged temp file was never renamed

    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.done", path="ep.mp3", timeout=60)
    finally:
        assert daemon.stop() == 0
    out = setup.outbox / "ep.mp3"
    assert len(ID3(out).getall("CTOC")) == 1
    assert without_id3v2(out.read_bytes()) == without_id3v2(recording.read_bytes())
    assert not [p for p in setup.outbox.rglob("*") if is_temp_name(p.name)]
    assert len(creates(emulator)) == 1


def test_a_format_that_cannot_carry_tags_is_delivered_as_sent(
    tmp_path: Path, emulator: Emulator
) -> None:
    from tests.conftest import make_wav

    setup = Setup(tmp_path, emulator.base_url, after="keep", preset=SUMMARIZE)
    recording = make_wav(setup.inbox / "ep.wav", seconds=5)
    daemon = setup.daemon()
    try:
        daemon.wait_for_event("job.done", path="ep.wav", timeout=60)
        skipped = daemon.wait_for_event("job.tags_skipped")
    finally:
        assert daemon.stop() == 0
    assert ".wav file cannot carry them" in skipped["reason"]
    assert (setup.outbox / "ep.wav").read_bytes() == recording.read_bytes()
    assert (setup.outbox / "ep.chapters.json").exists()  # the side files stay
