"""Taking recordings: a settled file (or multi-track session) becomes a queued job.

The content is fingerprinted (SHA-256) once, here; the options are the folder's preset with
the ``.cvsyncd.toml`` overrides of the recording's folder, snapshotted into the job. The
same content with the same options under another name or in another folder becomes a job
that waits for the first one and ends as ``duplicate``: reported, never paid for twice.
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path, PurePosixPath
from typing import Any

import structlog

from cvsyncd import events as ev
from cvsyncd.config import Folder, overrides
from cvsyncd.errors import ConfigError
from cvsyncd.failpoints import failpoint
from cvsyncd.inbox import inputs
from cvsyncd.inbox import rules as inbox
from cvsyncd.jobs import Backlog, InputFile, Job, JobState
from cvsyncd.pipeline.backlog import Backlogs
from cvsyncd.pipeline.runtime import Runtime, RuntimePart
from cvsyncd.pipeline.upload import VIDEO_EXTENSIONS, combined_fingerprint
from cvsyncd.redact import shown_options

S = JobState
HELD_ORIGINAL_RECHECK = 300.0  # seconds between two looks at a held job's duplicate


class Verdict(str):
    """What became of a file offered for intake (a word), and for "refused" why, in plain
    words for the user (``reason``); the watcher lists refused entries for ``status``."""

    reason: str | None

    def __new__(cls, word: str, reason: str | None = None) -> Verdict:
        verdict = super().__new__(cls, word)
        verdict.reason = reason
        return verdict


class Intake(RuntimePart):
    """Turning settled files into jobs, and settling duplicates."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.log = structlog.get_logger("cvsyncd.pipeline")
        self.backlogs = Backlogs(runtime)

    async def take_file(self, folder: Folder, path: Path, *, backlog: bool = True) -> Verdict:
        """Make a job of a settled recording (a file, or a multi-track session folder).

        Return "queued", "known" (a job has it already), "changed" (it changed while being
        read: let it settle again), "skipped" (not now: gone), "held" (its
        ``.cvsyncd.toml`` is broken: it waits for the fix) or "refused" (not a regular
        file inside the inbox, unreadable or empty: ``reason`` says which and what to do).
        Nothing is read through a link or from a FIFO (``inputs.py``).

        The first time a folder is seen its backlog is decided (``backlog.py``): a
        recording of a held backlog becomes a job that the spend guard holds; one of a
        skipped backlog is "skipped" for as long as it is unchanged. ``backlog=False``
        (``cvsyncd process FILE``: the user named it) takes it as a new recording.
        """
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return Verdict("skipped")
        decided = await self.backlogs.decide(folder) if backlog else None
        if backlog and decided is None:
            return Verdict("changed")  # its inbox cannot be looked at now: decide later
        if stat.S_ISDIR(st.st_mode):
            return await self._take_session(folder, path, decided)
        rel = path.relative_to(folder.inbox).as_posix()
        if not stat.S_ISREG(st.st_mode):
            return self._refuse(folder, rel, inputs.refusal(path, inputs.kind_of(st.st_mode)))
        if st.st_size == 0:
            self.log.warning(ev.INBOX_EMPTY_FILE, folder=folder.name, path=rel)
            return Verdict("refused", "it is empty (0 bytes); it is taken once it has content")
        if self.store.find_by_input(folder.key, rel, st.st_size, st.st_mtime_ns):
            return Verdict("known")
        if self.store.find_pending_for_name(folder.key, rel) is not None:
            # a job for this file has not been submitted yet: it will notice the change itself
            return Verdict("known")
        facts = _backlog_facts(decided, rel, st.st_size, st.st_mtime_ns)
        if facts is None:
            return Verdict("skipped")  # a backlog the folder said to skip
        options = self._options_for(folder, PurePosixPath(rel).parent, rel)
        if options is None:
            return Verdict("held")
        try:
            st, fingerprint = await asyncio.to_thread(inputs.fingerprint, folder.inbox, rel)
        except inputs.InputChanged:
            return Verdict("changed")
        except inputs.InputRefused as exc:
            if exc.kind == "missing":
                return Verdict("skipped")
            return self._refuse(folder, rel, exc)
        recorded = InputFile.of(rel, st, fingerprint)
        if path.suffix.lower() in VIDEO_EXTENSIONS:
            options.setdefault("video", True)
        return Verdict(self._create(folder, rel, [recorded], options, fingerprint, facts))

    def _refuse(self, folder: Folder, rel: str, exc: inputs.InputRefused) -> Verdict:
        self.log.warning(ev.INBOX_NOT_TAKEN, folder=folder.name, path=rel, reason=exc.message)
        return Verdict("refused", exc.message)

    async def _take_session(
        self, folder: Folder, session: Path, decided: Backlog | None = None
    ) -> Verdict:
        """Make one job of a multi-track session: all its tracks, one edit."""
        name = session.relative_to(folder.inbox).as_posix()
        facts = _backlog_facts(decided, name, None, None)
        if facts is None:
            return Verdict("skipped")
        tracks = await asyncio.to_thread(inbox.session_tracks, folder, session)
        if not tracks:
            return Verdict("skipped")
        every = [f"{name}/{p.name}" for p, _ in tracks]
        unknown = [
            rel
            for rel, (_, st) in zip(every, tracks, strict=True)
            if self.store.find_by_input(folder.key, rel, st.st_size, st.st_mtime_ns) is None
        ]
        if not unknown:
            return Verdict("known")
        # tracks added to a session that a job took already (its edit may be paid for) are
        # taken alone; a track of it that changed makes the whole session new again
        rels = every if self.store.taken_before(folder.key, unknown) else unknown
        if self.store.find_pending_for_name(folder.key, name) is not None:
            return Verdict("known")
        options = self._options_for(folder, PurePosixPath(name), name)
        if options is None:
            return Verdict("held")
        recorded = []
        for rel in rels:
            try:
                st, fingerprint = await asyncio.to_thread(inputs.fingerprint, folder.inbox, rel)
            except inputs.InputChanged:
                return Verdict("changed")
            except inputs.InputRefused as exc:
                if exc.kind == "missing":
                    return Verdict("changed")  # a track went away: look at the session again
                return self._refuse(folder, rel, exc)
            recorded.append(InputFile.of(rel, st, fingerprint))
        return Verdict(
            self._create(
                folder,
                name,
                recorded,
                options,
                combined_fingerprint(recorded),
                {**facts, "session": True},
            )
        )

    def _options_for(
        self, folder: Folder, rel_dir: PurePosixPath, what: str
    ) -> dict[str, Any] | None:
        """The effective edit config (with ``.cvsyncd.toml`` overrides), or None if broken."""
        try:
            return overrides.effective_options(self.config, folder, rel_dir)
        except ConfigError as exc:
            self.log.error(
                ev.INBOX_OVERRIDE_BROKEN,
                folder=folder.name,
                path=what,
                problems=[str(p) for p in exc.problems],
            )
            return None

    def _create(
        self,
        folder: Folder,
        name: str,
        recorded: list[InputFile],
        options: dict[str, Any],
        fingerprint: str,
        facts: dict[str, Any],
    ) -> str:
        facts = {"preset": folder.preset, **facts}
        options = shown_options(options)  # a signed_url's query is never stored (submit.py)
        # one transaction: with the shared store, the same recording dropped at two sites
        # at once is found by the second (and paid once)
        with self.store.serialized():
            original = self.store.find_same_content(fingerprint, options)
            if original is not None:  # decided once it is done: see ``duplicate``
                facts["duplicate_of"] = original.id
            job = self.store.create_job(
                folder.key, name, recorded, options, fingerprint=fingerprint, facts=facts
            )
        if job is None:
            # same content under the same name (touched, or copied again): already handled
            existing = self.store.find_by_identity(folder.key, name, fingerprint)
            if existing is not None:
                for position, item in enumerate(recorded):
                    self.store.set_input(
                        existing.id,
                        position,
                        size=item.size,
                        mtime_ns=item.mtime_ns,
                        ctime_ns=item.ctime_ns,
                        inode=item.inode,
                    )
            return "known"
        failpoint("intake.created")
        self.log.info(
            ev.JOB_QUEUED,
            job=job.id,
            folder=folder.name,
            path=name,
            size=sum(i.size for i in recorded),
            tracks=len(recorded),
        )
        return "queued"

    # -- the same recording again ------------------------------------------------------

    async def duplicate(self, job: Job, folder: Folder) -> None:
        """Settle a job whose content and preset another job already has.

        Once that job is done, this one ends as ``duplicate`` — reported, not submitted
        (it would bill the same recording twice), its input left where it is. If the other
        job failed or was forgotten, this one is processed normally.
        """
        original = self.store.get(int(job.facts["duplicate_of"]))
        if original is None or original.state in (S.FAILED, S.DUPLICATE):
            facts = {k: v for k, v in job.facts.items() if k != "duplicate_of"}
            self.store.update(
                job.id,
                S.QUEUED,
                "the earlier job with this recording did not finish; processing this one",
                facts=facts,
                error=None,
            )
            return
        if original.state is not S.DONE:
            # a held original may wait for months: look again now and then, not every 10 s
            held = original.state is S.HELD
            self.store.update(
                job.id,
                S.QUEUED,
                None,
                next_attempt_at=time.time() + (HELD_ORIGINAL_RECHECK if held else 10.0),
                error=f"waiting for job {original.id} ({original.name}), which "
                f"has the same recording and preset{' and is held' if held else ''}",
            )
            return
        results = ", ".join(o["path"] for o in original.outputs if o.get("written"))
        message = (
            f"same recording and preset as job {original.id} ({original.name}), which is "
            f"done; not submitted again, so it is not paid twice. Its results: {results}. "
            f"To process this file anyway: cvsyncd retry -c {self.config.path} {job.id}"
        )
        self.store.transition(
            job.id, S.QUEUED, S.DUPLICATE, message, error=message, finished_at=time.time()
        )
        self.log.warning(
            ev.JOB_DUPLICATE,
            job=job.id,
            path=job.name,
            same_as=original.id,
            same_as_path=original.name,
        )


def _backlog_facts(
    decided: Backlog | None, name: str, size: int | None, mtime_ns: int | None
) -> dict[str, Any] | None:
    """The facts a new job gets from its folder's backlog decision (``{"backlog": "hold"}``
    makes the spend guard hold it), or None if the recording is one to skip."""
    if decided is None or decided.decision == "none":
        return {}
    if not decided.covers(name, size, mtime_ns):
        return {}
    if decided.decision == "skip":
        return None
    return {"backlog": decided.decision}
