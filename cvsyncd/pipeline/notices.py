"""Telling others: the folder's hook commands and webhook when a job ends, and alerts to
people ([alerts]) when something needs them.

Notices run in the background: a hook that hangs or a receiver that is down never blocks
or fails a job. Each delivery (retried with back-off by ``notify``) is recorded in the
job's facts, so ``cvsyncd show`` tells whether the publishing script ran. Alerts are
posted to the :class:`Alerter`, which groups and sends them on its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import structlog

from cvsyncd import events as ev
from cvsyncd.config import Folder
from cvsyncd.errors import ConfigError, StoreError
from cvsyncd.jobs import Job, JobState, Store
from cvsyncd.notify import hooks, webhook
from cvsyncd.notify.alerts import Alert, Alerter
from cvsyncd.notify.message import Event, Report
from cvsyncd.outbox.plan import written_paths

KINDS = {
    JobState.DONE: "job.done",
    JobState.FAILED: "job.failed",
    JobState.NEEDS_ATTENTION: "job.needs_attention",
}


ALERTED = {JobState.FAILED: "failed", JobState.NEEDS_ATTENTION: "needs_attention"}


class Notices:
    def __init__(self, store: Store, alerter: Alerter | None = None):
        self.store = store
        self.alerter = alerter
        self.log = structlog.get_logger("cvsyncd.notify")
        self._tasks: set[asyncio.Task[None]] = set()

    def _alert(self, alert: Alert) -> None:
        if self.alerter is not None:
            self.alerter.post(alert)

    def job_held(self, job: Job, folder: Folder | None, reason: str) -> None:
        """A job was held before its upload (a backlog, a spend cap)."""
        name = folder.name if folder is not None else job.folder
        self._alert(Alert("held", job.name, name, reason, job.id))

    def account_paused(self, reason: str) -> None:
        """All new work stopped for the account (a refused key, no credit)."""
        self._alert(Alert("paused", "", "", reason))

    def store_unavailable(self, reason: str) -> None:
        """The shared store does not answer: no new step starts (pipeline/outage.py)."""
        self._alert(Alert("store", "", "", reason))

    def inbox_unavailable(self, folder: Folder, reason: str) -> None:
        """A folder's inbox vanished (an unmounted share): the folder waits for it."""
        self._alert(Alert("unavailable", folder.name, folder.name, f"{folder.inbox}: {reason}"))

    def job_ended(self, job: Job, folder: Folder) -> None:
        """Start the folder's hook and webhook for a job that just ended (if any are set),
        and alert people when it failed or needs them."""
        if job.state in ALERTED:
            self._alert(Alert(ALERTED[job.state], job.name, folder.name, job.error or "", job.id))
        kind = KINDS.get(job.state)
        argv = folder.on_done if job.state is JobState.DONE else folder.on_failed
        if kind is None or not (argv or folder.notify_url):
            return
        event = Event(
            kind=kind,
            job_id=job.id,
            state=job.state.value,
            folder=job.folder,
            input=job.name,
            outputs=tuple(written_paths(job.outputs)),
            error=job.error,
            at=time.time(),
        )
        task = asyncio.get_running_loop().create_task(self._deliver(job, folder, event, argv))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, job: Job, folder: Folder, event: Event, argv: tuple[str, ...]) -> None:
        deliveries: list[Report] = []
        if argv:
            deliveries.append(
                await hooks.run_command(argv, event, timeout=folder.hook_timeout_seconds)
            )
        if folder.notify_url:
            try:
                secret = (
                    webhook.read_secret(folder.notify_secret_file)
                    if folder.notify_secret_file
                    else None
                )
            except ConfigError as exc:
                self.log.error(
                    ev.NOTIFY_UNSIGNED,
                    job=job.id,
                    error="; ".join(str(p) for p in exc.problems),
                )
                deliveries.append(Report("webhook", False, 0, "no usable secret"))
            else:
                deliveries.append(
                    await webhook.send_webhook(
                        folder.notify_url, event, secret=secret, timeout=folder.hook_timeout_seconds
                    )
                )
        self._record(job, deliveries)

    def _record(self, job: Job, deliveries: list[Report]) -> None:
        current = self.store.get(job.id)
        if current is None or current.state is not job.state:
            return  # retried or forgotten meanwhile
        notes = [
            *current.facts.get("notifications", []),
            *({**dataclasses.asdict(d), "event": KINDS[job.state]} for d in deliveries),
        ]
        try:
            self.store.update(
                job.id, job.state, None, facts={**current.facts, "notifications": notes}
            )
        except StoreError:
            return
        for delivery in deliveries:
            (self.log.info if delivery.ok else self.log.warning)(
                ev.NOTIFY_SENT if delivery.ok else ev.NOTIFY_FAILED,
                job=job.id,
                path=job.name,
                target=delivery.target,
                ok=delivery.ok,
                attempts=delivery.attempts,
                detail=delivery.detail,
            )

    async def drain(self, timeout: float) -> None:
        """At shutdown: let running notices and alerts finish for ``timeout`` seconds, then
        stop them."""
        if self.alerter is not None:
            await self.alerter.drain(timeout)
        tasks = list(self._tasks)
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
