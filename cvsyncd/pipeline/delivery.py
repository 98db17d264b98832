"""Getting a finished edit's results into the outbox: the fetch and write steps.

::

    fetch   fetching → writing     download the cleaned media, the mix, the marker files;
                                   embed title, chapters and cover into the media's temp file
    write   writing → disposing    render transcripts, summaries, chapters, marker exports
                                   and <stem>.cleanvoice.json from the stored result

Every file is written with the atomic protocol of ``fileops`` under the names planned by
``outputs.plan_outputs``; the plan is stored before the first byte, and each name is
claimed in the job before its rename, so a redo after a crash replaces our own files and
never a user's. An interrupted download keeps its temp file and resumes with ``Range``.
"""

from __future__ import annotations

import asyncio
import grp
import os
import time
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import structlog

from cvsyncd import events as ev
from cvsyncd.config import Folder
from cvsyncd.errors import JobError, PermanentApiError, TransientApiError
from cvsyncd.failpoints import failpoint
from cvsyncd.jobs import Job, JobState
from cvsyncd.outbox import render, tags
from cvsyncd.outbox.files import (
    COPY_BLOCK,
    ArchiveTooLarge,
    AtomicFile,
    extract_zip,
    remove_file,
)
from cvsyncd.outbox.plan import (
    JSON_SUFFIX,
    Plan,
    extension_of,
    first_url,
    plan_outputs,
    render_job_json,
    written_paths,
)
from cvsyncd.pipeline import schedule, videoupload
from cvsyncd.pipeline.runtime import Runtime, RuntimePart

S = JobState
MAX_MARKER_BYTES = 16 * 1024**2  # of a marker file read back to make REAPER/Audition lists


def group_id(folder: Folder) -> int | None:
    """The numeric group of the folder's ``group`` setting (a name or a number)."""
    if folder.group is None:
        return None
    if folder.group.isdigit():
        return int(folder.group)
    try:
        return grp.getgrnam(folder.group).gr_gid
    except KeyError:
        raise JobError(
            f"there is no group named {folder.group!r} (folder setting "
            "group); outputs cannot be given to it",
            retryable=True,
        ) from None


def render_context(job: Job, folder: Folder, plan: Plan) -> render.RenderContext:
    """What the renderers need besides the result: names, speakers, downloaded markers."""
    json_path = next(Path(e["path"]) for e in plan if e["kind"] == "json")
    markers = {}
    for entry in plan:
        if entry["kind"] == "marker" and entry.get("written") and not entry.get("skip"):
            try:
                with open(entry["path"], "rb") as marker:  # bounded: it came from outside
                    markers[entry["name"]] = marker.read(MAX_MARKER_BYTES).decode(
                        "utf-8", "replace"
                    )
            except OSError:
                continue
    tracks = tuple(Path(i.rel_path).stem for i in job.inputs) if job.facts.get("session") else ()
    return render.RenderContext(
        stem=json_path.name[: -len(JSON_SUFFIX)],
        title=Path(job.name).name,
        speakers=folder.speakers,
        track_names=tracks,
        markers=markers,
    )


class Delivery(RuntimePart):
    """The fetch and write steps of every job."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.log = structlog.get_logger("cvsyncd.pipeline")
        # full results (with their signed URLs) between the poll and the fetch; never stored
        self._live_results: dict[int, Mapping[str, Any]] = {}
        # an interrupted download's temp file, kept to resume it with Range at the next try
        self._partial: dict[int, tuple[str, AtomicFile]] = {}

    def remember(self, job_id: int, result: Mapping[str, Any]) -> None:
        """Keep a live result (signed URLs and all) for the fetch that follows the poll."""
        self._live_results[job_id] = result

    # -- fetch ------------------------------------------------------------------------

    async def fetch(self, job: Job, folder: Folder) -> None:
        try:
            result = self._live_results.pop(job.id, None) or await self._fresh_result(job)
        except PermanentApiError:
            await self._drop_partial(job.id)  # the job ends here: its kept download with it
            raise
        markers = dict(render.marker_downloads(result))
        plan: Plan = [dict(o) for o in job.outputs]
        if not plan:
            derived = render.derived_suffixes(result, folder.transcript_formats, list(markers))
            plan = plan_outputs(folder, job, result, derived, markers)
            job = self.store.update(job.id, S.FETCHING, None, outputs=plan)
            failpoint("fetch.planned")
        for entry in plan:
            if not entry.get("source") or entry.get("skip"):
                continue
            url = (
                markers.get(entry["name"])
                if entry["kind"] == "marker"
                else first_url(result.get(entry["source"]))
            )
            if url is None:
                if entry["kind"] in ("media", "tracks"):
                    raise PermanentApiError(f"the result has no {entry['source']} to download")
                continue
            out, offset = await self._download_target(job, folder, entry)
            try:
                size = await self.client.download(url, out.file, offset=offset)
            except TransientApiError:
                self._partial[job.id] = (entry["path"], out)  # resumed at the next attempt
                raise
            except BaseException:
                await asyncio.to_thread(out.discard)
                raise
            if entry["kind"] == "tracks":
                await self._unpack_tracks(job, folder, plan, entry, out, url)
            else:
                if entry["kind"] == "media" and videoupload.audio_only(job):
                    out = await self._put_back(job, folder, entry, out)
                if entry["kind"] in TAGGED:
                    await asyncio.to_thread(out.file.flush)
                    try:
                        await asyncio.to_thread(embed_into, out.temp, entry, job, folder, result)
                    except BaseException:
                        await asyncio.to_thread(out.discard)
                        raise
                    failpoint("fetch.tagged")
                await self._commit(job, plan, entry, out)
            failpoint("fetch.committed")
            self.log.info(
                ev.JOB_DOWNLOADED, job=job.id, path=job.name, output=entry["path"], size=size
            )
        self.store.transition(
            job.id, S.FETCHING, S.WRITING, "downloaded", attempts=0, error=None, next_attempt_at=0
        )
        failpoint("fetch.done")

    async def _put_back(
        self, job: Job, folder: Folder, entry: Mapping[str, Any], sound: AtomicFile
    ) -> AtomicFile:
        """The downloaded cleaned sound, remuxed into the original video (a new temp file
        beside it; the sound's temp file is removed). See ``videoupload``."""
        if videoupload.avtools.tools() is None:
            await asyncio.to_thread(sound.discard)
            raise JobError(
                f"ffmpeg and ffprobe are needed to put the cleaned sound back into {job.name} "
                "and are no longer installed (e.g. apt-get install ffmpeg); waiting for them",
                retryable=True,
            )
        try:
            await asyncio.to_thread(sound.file.flush)
            done = await asyncio.to_thread(
                videoupload.put_back, job, folder, entry, sound.temp, group_id(folder)
            )
        except videoupload.DoesNotFit as exc:
            # its result cannot be used: a retry sends the whole video (requeue, not resume)
            decision = {
                "mode": "full",
                "reason": f"the cleaned sound did not fit the video: {exc}",
                "forced": True,
            }
            facts = {**job.facts, "video_upload": decision, "edit_unusable": True}
            self.store.update(job.id, job.state, None, facts=facts)
            raise JobError(
                f"the cleaned sound could not be put back into {job.name}: {exc}. "
                f"`cvsyncd retry {job.id}` sends the whole video instead (a second edit, "
                "billed again)"
            ) from None
        except videoupload.avtools.ToolError as exc:
            # a local trouble (disk, time, the tools), not the edit's: it is kept and retried
            raise JobError(_tool_trouble(job, folder, entry, exc), retryable=True) from None
        finally:
            await asyncio.to_thread(sound.discard)
        if done.retaken is not None:  # the original, put back as a copy: known by it now
            new = done.retaken
            self.store.set_input(
                job.id, 0, size=new.size, mtime_ns=new.mtime_ns, ctime_ns=new.ctime_ns,
                inode=new.inode,
            )  # fmt: skip
        failpoint("fetch.remuxed")
        self.log.info(ev.JOB_SOUND_PUT_BACK, job=job.id, output=entry["path"], how=done.how)
        return done.file

    async def _fresh_result(self, job: Job) -> Mapping[str, Any]:
        """After a restart or a failed download the signed URLs must be fetched anew."""
        assert job.edit_id
        status = await self.client.get_edit(job.edit_id)
        if not status.succeeded and schedule.has_expired(
            self.config, job.submitted_at, time.time()
        ):
            raise PermanentApiError(schedule.expired_message(self.config, job))
        if not status.succeeded or status.result is None:
            raise TransientApiError(
                f"the result of edit {job.edit_id} is not available right "
                f"now (status {status.status})"
            )
        return status.result

    async def _drop_partial(self, job_id: int) -> None:
        held = self._partial.pop(job_id, None)
        if held is not None:
            await asyncio.to_thread(held[1].discard)

    async def _download_target(
        self, job: Job, folder: Folder, entry: Mapping[str, Any]
    ) -> tuple[AtomicFile, int]:
        """The temp file to download into, and how much of it is already there."""
        held = self._partial.pop(job.id, None)
        if held is not None:
            if held[0] == entry["path"]:
                return held[1], await asyncio.to_thread(held[1].file.tell)
            await asyncio.to_thread(held[1].discard)
        # a session's download goes to a temp file inside the session's output folder
        dest = (
            Path(entry["path"]) / ".archive" if entry["kind"] == "tracks" else Path(entry["path"])
        )
        gid = group_id(folder)
        return await asyncio.to_thread(AtomicFile, dest, folder.file_mode, gid), 0

    async def _unpack_tracks(
        self,
        job: Job,
        folder: Folder,
        plan: Plan,
        entry: dict[str, Any],
        archive: AtomicFile,
        url: str,
    ) -> None:
        """A session's download: a ZIP of cleaned tracks, or one file; written into its folder."""
        directory = Path(entry["path"])
        await asyncio.to_thread(archive.file.flush)
        try:
            if await asyncio.to_thread(_is_zip, archive.temp):
                files = await asyncio.to_thread(
                    unpack_tracks,
                    job,
                    folder,
                    archive.temp,
                    directory,
                    self.client.max_download_bytes,
                    self.config.path,
                )
            else:
                ext = extension_of(url) or "audio"
                single = AtomicFile(
                    directory / f"{directory.name}.{ext}", folder.file_mode, group_id(folder)
                )
                await asyncio.to_thread(_copy_into, archive, single)
                files = [single.dest]
        finally:
            await asyncio.to_thread(archive.discard)
        entry["written"] = True
        entry["files"] = [str(f) for f in files]
        self.store.update(job.id, job.state, None, outputs=plan)

    # -- write ------------------------------------------------------------------------

    async def write(self, job: Job, folder: Folder) -> None:
        plan: Plan = [dict(o) for o in job.outputs]
        # parsing and rendering a long result takes a while: never on the event loop,
        # which must keep turning (the watchdog pings only while it does)
        await asyncio.to_thread(lambda: job.result)
        context = await asyncio.to_thread(render_context, job, folder, plan)
        # a label track named in no way cvsyncd knows is found by its content, now
        await asyncio.to_thread(add_missing_derived, job, folder, plan, context.markers)
        gid = group_id(folder)
        for entry in [e for e in plan if not e.get("skip") and e["kind"] in RENDERED]:
            out = await asyncio.to_thread(rendered_file, entry, job, folder, plan, context, gid)
            if out is not None:
                await self._commit(job, plan, entry, out)
        self.store.transition(
            job.id,
            S.WRITING,
            S.DISPOSING,
            "outputs written",
            attempts=0,
            error=None,
            next_attempt_at=0,
        )
        failpoint("write.done")
        self.log.info(ev.JOB_WRITTEN, job=job.id, path=job.name, outputs=written_paths(plan))

    async def _commit(self, job: Job, plan: Plan, entry: dict[str, Any], out: AtomicFile) -> None:
        """Put an output in place. A file we did not write there is never replaced.

        The name is claimed in the job before the rename, so that after a crash at any point
        a file under that name is known to be ours and is simply replaced by the redo.
        """
        replace = bool(entry.get("written") or entry.get("ours"))
        if not entry.get("written"):
            entry["written"] = True
            self.store.update(job.id, job.state, None, outputs=plan)
        try:
            await asyncio.to_thread(out.commit, overwrite=replace)
        except FileExistsError:
            # someone put a file under our planned name: plan new names, drop our partial set
            for other in plan:
                if other.get("written") and other is not entry and other["kind"] != "tracks":
                    await asyncio.to_thread(remove_file, Path(other["path"]))
            self.store.update(job.id, job.state, None, outputs=[])
            raise JobError(
                f"{entry['path']} appeared while the outputs were being written; "
                "writing them again under free names",
                retryable=True,
            ) from None


def unpack_tracks(
    job: Job, folder: Folder, archive: Path, directory: Path, max_bytes: int, config: Path
) -> list[Path]:
    """The cleaned tracks of a session, from their ZIP archive into ``directory``.

    A damaged archive (a bad checksum, cut short) is downloaded again; one that unpacks to
    more than ``max_download_gb`` fails the job, keeping the paid edit for a retry.
    """
    try:
        return extract_zip(
            archive,
            directory,
            mode=folder.file_mode,
            group=group_id(folder),
            max_bytes=max_bytes,
        )
    except ArchiveTooLarge:
        limit = max_bytes / 2**30
        raise JobError(
            f"the cleaned tracks for {directory} came as a ZIP archive that unpacks to more "
            f"than max_download_gb ({limit:g} GB) allows. If the session is really that "
            f"large, raise max_download_gb in the [cleanvoice] section of {config}, then run "
            f"`cvsyncd retry -c {config} {job.id}`: the same edit is fetched again, not paid again"
        ) from None
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise JobError(
            f"the cleaned tracks for {directory} came as a damaged ZIP archive ({exc}); "
            "it will be downloaded again",
            retryable=True,
        ) from None


def _is_zip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def _copy_into(source: AtomicFile, target: AtomicFile) -> None:
    try:
        with open(source.temp, "rb") as f:
            while block := f.read(1024 * 1024):
                target.file.write(block)
    except BaseException:
        target.discard()  # a full disk must not leave the temp file behind
        raise
    target.commit()


def render_entry(
    entry: Mapping[str, Any], job: Job, folder: Folder, plan: Plan, context: render.RenderContext
) -> bytes | None:
    """The bytes of one derived file or of the JSON record (None: the result lacks it)."""
    assert job.result is not None
    if entry["kind"] == "json":
        return render_job_json(folder, job, job.result, plan)
    try:
        return render.render(entry["suffix"], job.result, context)
    except ValueError as exc:
        structlog.get_logger("cvsyncd.pipeline").warning(
            ev.JOB_OUTPUT_SKIPPED,
            job=job.id,
            output=entry["path"],
            reason=str(exc),
        )
        return None


def render_again(job: Job, folder: Folder) -> Plan:
    """Write a done job's derived files anew from its stored result (``cvsyncd render``),
    with the folder's current formats and speaker names, and embed the tags into the
    cleaned file again with the folder's current ``embed``, ``show`` and cover. No API
    call is made."""
    assert job.result is not None
    plan: Plan = [dict(o) for o in job.outputs]
    context = render_context(job, folder, plan)
    add_missing_derived(job, folder, plan, context.markers)
    gid = group_id(folder)
    for entry, data in rendered(job, folder, plan, context):
        filled_file(Path(entry["path"]), data, folder, gid).commit(overwrite=True)
        entry["written"] = True
    for entry in plan:
        if entry["kind"] in TAGGED and entry.get("written") and not entry.get("skip"):
            tag_again(job, folder, entry, gid)
    return plan


def add_missing_derived(job: Job, folder: Folder, plan: Plan, markers: Mapping[str, str]) -> None:
    """Add to ``plan`` the derived files the result calls for that it lacks.

    ``markers`` are the downloaded marker files' contents, so that a label track is
    recognised by what it holds. A name taken by someone else's file is marked ``skip``
    (unless the folder overwrites).
    """
    assert job.result is not None
    json_entry = next(e for e in plan if e["kind"] == "json")
    stem_path = json_entry["path"][: -len(JSON_SUFFIX)]
    have = {e.get("suffix") for e in plan if e["kind"] == "derived"}
    for suffix in render.derived_suffixes(job.result, folder.transcript_formats, markers):
        if suffix not in have:
            entry = {"kind": "derived", "suffix": suffix, "path": stem_path + suffix}
            if os.path.lexists(entry["path"]) and folder.on_conflict != "overwrite":
                entry["skip"] = True  # someone else's file is in the way
            plan.insert(len(plan) - 1, entry)


RENDERED = ("derived", "json")  # the plan's kinds that are made here, not downloaded
TAGGED = ("media", "mix")  # the plan's kinds that get the episode's tags embedded


def episode_tags(job: Job, folder: Folder, result: Mapping[str, Any]) -> tags.EpisodeTags:
    """The tags the folder wants written into ``job``'s cleaned file, from ``result``."""
    log = structlog.get_logger("cvsyncd.pipeline")
    cover = None
    if "cover" in folder.embed:
        first = job.inputs[0].rel_path if job.inputs else job.name
        places = [folder.inbox.joinpath(*Path(first).parent.parts), folder.inbox]
        found = tags.find_cover(folder.cover, list(dict.fromkeys(places)))
        if found is not None:
            try:
                cover = tags.read_cover(found[0], in_inbox=found[1])
            except tags.CoverError as exc:
                log.warning(ev.JOB_TAGS_SKIPPED, job=job.id, path=job.name, reason=str(exc))
    return tags.episode_tags(result, folder.embed, folder.show, cover)


def embed_into(
    path: Path, entry: Mapping[str, Any], job: Job, folder: Folder, result: Mapping[str, Any]
) -> bool:
    """Embed the episode's tags into the media temp file ``path`` (before its rename).

    A file that is not what its extension says is delivered as it came, with a warning.
    """
    log = structlog.get_logger("cvsyncd.pipeline")
    wanted = episode_tags(job, folder, result)
    extension = Path(entry["path"]).suffix.lstrip(".")
    if not wanted:
        return False
    if not tags.can_embed(extension):
        log.info(
            ev.JOB_TAGS_SKIPPED,
            job=job.id,
            path=job.name,
            reason=f"a .{extension} file cannot carry them (only MP3 and M4A/MP4 can)",
        )
        return False
    try:
        done = tags.embed_tags(path, extension, wanted)
    except ValueError as exc:
        log.warning(ev.JOB_TAGS_SKIPPED, job=job.id, path=job.name, reason=str(exc))
        return False
    if done:
        log.info(ev.JOB_TAGGED, job=job.id, output=entry["path"], parts=wanted.parts)
    return done


def tag_again(job: Job, folder: Folder, entry: Mapping[str, Any], gid: int | None) -> None:
    """Embed the tags anew into a delivered file: a tagged copy replaces it atomically."""
    assert job.result is not None
    source = Path(entry["path"])
    if not source.is_file() or source.is_symlink():
        return
    out = AtomicFile(source, folder.file_mode, gid)
    try:
        with open(source, "rb") as original:
            while block := original.read(COPY_BLOCK):
                out.file.write(block)
        out.file.flush()
        embed_into(out.temp, entry, job, folder, job.result)
    except BaseException:
        out.discard()
        raise
    out.commit(overwrite=True)


def rendered_file(
    entry: Mapping[str, Any],
    job: Job,
    folder: Folder,
    plan: Plan,
    context: render.RenderContext,
    gid: int | None,
) -> AtomicFile | None:
    """Render one derived file into a temp file ready to commit (None: nothing to write)."""
    data = render_entry(entry, job, folder, plan, context)
    return None if data is None else filled_file(Path(entry["path"]), data, folder, gid)


def rendered(
    job: Job, folder: Folder, plan: Plan, context: render.RenderContext
) -> Iterator[tuple[dict[str, Any], bytes]]:
    """The plan's locally made files (derived ones and the JSON record) with their bytes."""
    for entry in plan:
        if entry.get("skip") or entry["kind"] not in RENDERED:
            continue
        data = render_entry(entry, job, folder, plan, context)
        if data is not None:
            yield entry, data


def filled_file(path: Path, data: bytes, folder: Folder, gid: int | None) -> AtomicFile:
    """A temp file holding ``data``, ready to be committed as ``path``."""
    out = AtomicFile(path, folder.file_mode, gid)
    try:
        out.file.write(data)
    except BaseException:
        out.discard()
        raise
    return out


def _tool_trouble(
    job: Job, folder: Folder, entry: Mapping[str, Any], exc: videoupload.avtools.ToolError
) -> str:
    """What a failed put-back says: which file, why, what to do; the edit is kept."""
    outbox = Path(entry["path"]).parent
    advice = {
        "space": f"Free space in {outbox}: it needs room for a copy of the video.",
        "timeout": f"The disk of {outbox} or of the inbox may be stalled or very slow.",
        "start": "Check that ffmpeg and ffprobe are installed and can run (ffmpeg -version).",
        "missing": "Install them again (e.g. apt-get install ffmpeg).",
    }.get(
        exc.cause,
        f"Check that {outbox} can be written and has room for a copy of the video, "
        "and that ffmpeg works (ffmpeg -version).",
    )
    return (
        f"the cleaned sound could not be put back into {job.name} (writing {entry['path']}): "
        f"{exc}. {advice} The edit ({job.edit_id}, already paid for) is kept and this is "
        "tried again by itself; nothing is uploaded or paid for again"
    )
