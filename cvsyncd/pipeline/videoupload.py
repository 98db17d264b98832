"""A video's sound sent alone, and put back into the video here.

A one-hour 1080p recording is gigabytes; its sound is about a hundred megabytes, and
Cleanvoice changes only the sound. When the edit keeps the timing (``presets.timing_changes``
finds no cut) and ffmpeg is installed, the upload step sends the first audio stream alone
(``video = false`` for that edit), and the fetch step puts the cleaned sound back into the
original video with stream copy — the picture is never re-encoded — and checks the result
against the original before it is renamed into place.

The choice is the preset's ``video_upload``, else the folder's: ``auto`` sends the sound
alone when it can and the whole video otherwise, saying why; ``full`` always sends the
whole video; ``audio`` refuses a preset that cuts. It is stored in the job's facts as
``video_upload`` (``mode``, ``reason``, the audio ``stream`` and its ``extension``), so
that the fetch after a restart knows what came back. The extracted sound is a temp file
in ``<state_dir>/extract``, made anew at every upload attempt, removed after the upload
and swept at start.

If the cleaned sound does not fit the video (a different length: the edit did not keep the
timing after all), the job fails with the reason, its edit marked ``edit_unusable`` and
``mode = "full"`` marked ``forced``: ``cvsyncd retry`` then sends the whole video (a new
edit, not a second fetch of this one). It is not resent on its own, because a second edit
is billed a second time. A failed extraction, before anything was sent, goes whole at the
next attempt by itself.

Anything else that stops the put-back keeps the paid edit: ffmpeg or ffprobe failing,
timing out or not starting, or the outbox full, is retried (the cleaned sound is fetched
again); a remux that does not give back the original video, or an original video that was
deleted or replaced meanwhile (:func:`original_lost`), fails the job once, and ``cvsyncd
retry`` fetches the same edit again once the cause is fixed. The original is recognised
by its content: a copy of it put back under its name is the same recording.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cvsyncd.config import Folder, presets
from cvsyncd.errors import JobError
from cvsyncd.inbox import inputs
from cvsyncd.jobs import InputFile, Job
from cvsyncd.outbox.files import TEMP_PREFIX, TEMP_SUFFIX, AtomicFile
from cvsyncd.pipeline import avtools
from cvsyncd.pipeline.disposal import input_place, missing_input, open_input

AUDIO, FULL = "audio", "full"
EXTRACT_DIR = "extract"


def is_video_job(job: Job) -> bool:
    """Whether ``job`` sends one video file (multi-track sessions never do)."""
    return job.options.get("video") is True and not job.facts.get("session")


def audio_only(job: Job) -> Mapping[str, Any] | None:
    """The stored audio-only decision of ``job``, or None if it sends the whole file."""
    decision = job.facts.get("video_upload")
    if isinstance(decision, Mapping) and decision.get("mode") == AUDIO:
        return decision
    return None


def extract_dir(state_dir: Path) -> Path:
    return state_dir / EXTRACT_DIR


def choose(job: Job, folder: Folder) -> dict[str, Any]:
    """Decide how ``job``'s video is sent; return the decision for its facts.

    Raise JobError when ``video_upload = "audio"`` cannot be honoured: a preset that cuts
    (permanent: the preset must change) or no ffmpeg (retried: it can be installed).
    """
    chosen = job.options.get(presets.VIDEO_UPLOAD_KEY)
    wanted = chosen if isinstance(chosen, str) else folder.video_upload
    extension = Path(job.name).suffix.lower().lstrip(".")
    if wanted == FULL:
        return {"mode": FULL, "reason": 'video_upload = "full"'}
    cuts = presets.timing_changes(job.options)
    if cuts and wanted == AUDIO:
        raise JobError(
            'video_upload = "audio" sends the sound alone, which only works when the edit '
            f"keeps the timing, but this preset does not: {'; '.join(cuts)}. Set muted = true "
            'in the preset, or video_upload = "auto" to send such videos whole'
        )
    if cuts:
        return {"mode": FULL, "reason": "the preset does not keep the timing: " + "; ".join(cuts)}
    if avtools.tools() is None:
        if wanted == AUDIO:
            raise JobError(
                'video_upload = "audio" needs ffmpeg and ffprobe, which are not installed '
                "(e.g. apt-get install ffmpeg); waiting for them",
                retryable=True,
            )
        return {"mode": FULL, "reason": "ffmpeg is not installed"}
    if extension not in avtools.VIDEO_MUXERS:
        return {"mode": FULL, "reason": f"a .{extension} video is sent whole (no remux here)"}
    try:
        with open_input(folder, job) as source:
            layout = avtools.read_layout(source.fileno())
    except avtools.ToolError as exc:
        return {"mode": FULL, "reason": f"ffprobe cannot read the video: {exc}"}
    stream = layout.first_audio
    if stream is None:
        return {"mode": FULL, "reason": "the video has no sound track"}
    if not layout.videos:
        return {"mode": FULL, "reason": "the file has no video stream"}
    audio_extension, _ = avtools.audio_container(stream.codec)
    how = "copied" if stream.codec in avtools.AUDIO_CONTAINERS else "as lossless FLAC"
    return {
        "mode": AUDIO,
        "reason": f"the preset keeps the timing; sending the {stream.codec} sound ({how}) alone",
        "stream": stream.index,
        "codec": stream.codec,
        "extension": audio_extension,
    }


def extract(job: Job, folder: Folder, state_dir: Path, decision: Mapping[str, Any]) -> Path:
    """Extract the sound to a fresh temp file in the state directory; return its path."""
    place = extract_dir(state_dir)
    place.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = place / f"{TEMP_PREFIX}job{job.id}-{secrets.token_hex(4)}{TEMP_SUFFIX}"
    try:
        recorded = job.inputs[0]
        with open_input(folder, job) as source:
            layout = avtools.read_layout(source.fileno())
            stream = _stream_of(layout, decision)
            avtools.extract_audio(source.fileno(), stream, target)
            if not recorded.matches(os.fstat(source.fileno())):
                raise JobError(
                    f"{job.name} changed while its sound was being extracted; "
                    "the new content will be taken once it has settled",
                    retryable=True,
                )
        got = avtools.read_layout(target).first_audio
        if got is None or (
            stream.duration and got.duration and abs(got.duration - stream.duration) > 0.1
        ):
            raise avtools.ToolError("the extracted sound is not as long as the video's")
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


def _stream_of(layout: avtools.Layout, decision: Mapping[str, Any]) -> avtools.Stream:
    index = decision.get("stream")
    found = next((s for s in layout.streams if s.index == index), None)
    if found is None or found.kind != "audio":
        raise avtools.ToolError(f"the video no longer has audio stream {index}")
    return found


class DoesNotFit(Exception):
    """The cleaned sound is not as long as the video's: the edit did not keep the timing,
    and its result cannot be used."""


@dataclass(frozen=True)
class PutBack:
    """A put-back's result: the temp file, ready to commit, how the sound went in, and the
    original's new record if it was found again as a copy of itself (see ``put_back``)."""

    file: AtomicFile
    how: str
    retaken: InputFile | None = None


def put_back(
    job: Job, folder: Folder, entry: Mapping[str, Any], cleaned: Path, gid: int | None
) -> PutBack:
    """Remux the cleaned sound into the original video into a temp file for
    ``entry["path"]``.

    Raise DoesNotFit if the cleaned sound does not fit the video; avtools.ToolError if
    ffmpeg or ffprobe failed (the caller decides what that means for the job); JobError if
    the original is gone or replaced, or the remux is not the original video.
    """
    decision = audio_only(job)
    assert decision is not None
    extension = Path(entry["path"]).suffix.lstrip(".")
    target = AtomicFile(Path(entry["path"]), folder.file_mode, gid)
    try:
        with contextlib.ExitStack() as stack:
            source, recorded = _open_original(stack, folder, job)
            layout = avtools.read_layout(source.fileno())
            stream = _stream_of(layout, decision)
            how = avtools.put_back(source.fileno(), layout, stream, cleaned, target.temp, extension)
            why = avtools.compare(layout, avtools.read_layout(target.temp), stream)
            if why and why.timing:
                raise DoesNotFit(str(why))
            if why:
                raise JobError(
                    f"the video rebuilt with the cleaned sound of {job.name} is not the "
                    f"original one ({why}); nothing was delivered. This is a fault of the "
                    f"remux (ffmpeg), not of the edit: after updating ffmpeg, `cvsyncd retry "
                    f"{job.id}` fetches the same edit again (it is not paid for again)"
                )
            if not recorded.matches(os.fstat(source.fileno())):
                raise JobError(f"{job.name} changed while it was being remuxed", retryable=True)
    except BaseException:
        target.discard()
        raise
    return PutBack(target, how, recorded if recorded is not job.inputs[0] else None)


def _open_original(
    stack: contextlib.ExitStack, folder: Folder, job: Job
) -> tuple[IO[bytes], InputFile]:
    """The original video, open and proven to be the recording the job took (the same
    file, or the same content put back), and its record; else the JobError of
    :func:`original_lost`."""
    root, rel = input_place(folder, job)
    taken = job.inputs[0]
    try:
        return stack.enter_context(inputs.open_taken(root, rel, taken)), taken
    except inputs.InputRefused as exc:
        raise original_lost(folder, job, root / rel, exc) from None
    except inputs.InputChanged:
        pass  # touched, copied back, or another recording: its content says which
    try:
        st, digest = inputs.fingerprint(root, rel)
    except inputs.InputRefused as exc:
        raise original_lost(folder, job, root / rel, exc) from None
    except inputs.InputChanged:
        raise JobError(
            f"{root / rel} is being written to; the cleaned sound is put back into it "
            "once it has settled",
            retryable=True,
        ) from None
    if digest != taken.fingerprint:
        raise original_lost(folder, job, root / rel, None)
    again = InputFile.of(taken.rel_path, st, digest)
    try:
        return stack.enter_context(inputs.open_taken(root, rel, again)), again
    except (inputs.InputRefused, inputs.InputChanged):
        raise JobError(
            f"{root / rel} changed while it was being checked; tried again", retryable=True
        ) from None


def original_lost(
    folder: Folder, job: Job, path: Path, refused: inputs.InputRefused | None
) -> JobError:
    """The original video needed for the put-back is gone (``refused.kind == "missing"``),
    unreadable or not a regular file any more (``refused``), or another recording (None).

    The job fails once, keeping its edit (paid for): putting the same file back and
    ``cvsyncd retry`` fetch the edit's sound again and finish, without a new upload. An
    inbox that looks unmounted is waited for instead."""
    if refused is not None and refused.kind == "missing":
        waiting = missing_input(folder, path)
        if waiting.retryable:
            return waiting
        what = "is gone (deleted or moved away)"
    elif refused is not None and refused.kind == "unreadable":
        what = f"cannot be read any more ({refused.message})"
    elif refused is not None:
        what = f"was replaced ({refused.message})"
    else:
        what = "was replaced by another file"
    return JobError(
        f"the original video {path} is needed to put the cleaned sound of edit {job.edit_id} "
        f"back into it, and it {what} while the edit was being processed. Put the same file "
        f"back at {path} and run `cvsyncd retry {job.id}`: the edit is kept (it is paid for) "
        "and its cleaned sound is fetched again, not uploaded or paid for again"
    )
