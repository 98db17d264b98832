"""Alerts that reach people: a message through Apprise when something needs a person.

The pipeline *posts* an :class:`Alert` (a job failed, needs attention or is held; the
account is paused; an inbox vanished) and returns at once: :class:`Alerter` sends in the
background, never on a job's path. Alerts of one kind that arrive within
``group_seconds`` of the first make one message ("40 recordings failed", listing the
first ones), so a burst is one ping, not forty. Each URL is sent to on its own, in a small
thread pool of its own (Apprise is synchronous), and retried with back-off when it
fails; a receiver that stays down costs a log line, nothing else. Messages name the
recording and the folder and say what to do; they pass through :func:`scrub` (no API key,
no signed URL), and an alert URL, which usually holds a token, is only ever shown as its
scheme (``ntfy://…``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import socket
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from cvsyncd import events as ev
from cvsyncd.config.model import AlertSettings
from cvsyncd.redact import scrub
from cvsyncd.retry import backoff_delay

LISTED = 10  # items named in one grouped message; the rest are counted
KEPT = 1000  # items kept per kind while a group gathers; the rest are only counted
DETAIL_CHARS = 300  # of an error or a reason, in a message
ATTEMPTS = 5  # per URL and message
BACKOFF_SECONDS = 10.0  # before the second attempt; doubling
MAX_BACKOFF_SECONDS = 300.0
SEND_THREADS = 2  # Apprise blocks: its own threads, never those the jobs' file work uses

# what to do, per kind: one line at the end of each message
ADVICE = {
    "failed": (
        "Each failed recording was moved to its folder's failed/ place next to a "
        "<name>.error.txt saying why. Fix the cause, then Retry it on the dashboard or run "
        "`cvsyncd retry JOB`."
    ),
    "needs_attention": (
        "cvsyncd cannot tell whether Cleanvoice received these (and billed them). Look for "
        "them in your Cleanvoice account; if they are not there, Retry them on the "
        "dashboard or run `cvsyncd retry JOB` (`cvsyncd show JOB` tells the story)."
    ),
    "held": (
        "They were not uploaded and cost nothing yet. Release them on the dashboard or "
        "run `cvsyncd release JOB` (or raise the cap in [budget]); `cvsyncd estimate` "
        "shows what they come to."
    ),
    "paused": (
        "No recording is uploaded until the account works again; nothing has failed. "
        "Put a working API key in the key file or add credit: cvsyncd checks again by "
        "itself and resumes."
    ),
    "unavailable": (
        "Nothing in it is lost or taken again: the folder resumes by itself when its "
        "inbox is back. Check that the share or disk is mounted (and, in a container, "
        "mapped)."
    ),
    "store": (
        "No new step starts at this site until the database answers; nothing is lost or "
        "sent twice. Check that PostgreSQL runs and can be reached ([store] url): cvsyncd "
        "resumes by itself."
    ),
}
NOUNS = {
    "failed": ("recording failed", "recordings failed"),
    "needs_attention": ("recording needs you", "recordings need you"),
    "held": ("recording is held before upload", "recordings are held before upload"),
    "paused": ("account pause: new work stopped", "account pauses: new work stopped"),
    "unavailable": ("inbox is unavailable", "inboxes are unavailable"),
    "store": ("shared store does not answer", "shared store outages"),
}


@dataclass(frozen=True)
class Alert:
    """Something a person should know about."""

    kind: str  # one of config.model.ALERT_EVENTS
    what: str  # the recording's path in its inbox, or the folder's name
    folder: str  # the folder's name ("" for the account)
    detail: str  # the error or the reason, in words
    job_id: int | None = None

    def line(self) -> str:
        """One line of a message about this alert."""
        detail = self.detail.strip().replace("\n", " ")
        if len(detail) > DETAIL_CHARS:
            detail = detail[:DETAIL_CHARS] + " …"
        job = f" (job {self.job_id})" if self.job_id is not None else ""
        if self.kind in ("paused", "store"):
            return detail
        if self.kind == "unavailable":
            return f"folder {self.folder}: {detail}"
        return f"{self.what}{job} in folder {self.folder}: {detail}"


def compose(kind: str, alerts: Sequence[Alert], more: int = 0, host: str = "") -> tuple[str, str]:
    """Return the (title, body) of one message about ``alerts`` of ``kind`` (and ``more``
    that were only counted), with what to do; secrets scrubbed."""
    total = len(alerts) + more
    one, many = NOUNS[kind]
    where = f" on {host}" if host else ""
    title = f"cvsyncd{where}: " + (one if total == 1 else f"{total} {many}")
    shown = [f"• {alert.line()}" for alert in alerts[:LISTED]]
    if total > len(shown):
        shown.append(f"… and {total - len(shown)} more (`cvsyncd status` lists them)")
    body = "\n".join([*shown, "", ADVICE[kind]])
    return scrub(title), scrub(body)


def shown_url(url: str) -> str:
    """An alert URL as it may appear in a log: its scheme only (the rest may be a token)."""
    scheme, sep, _ = url.partition("://")
    return f"{scheme}://…" if sep else "(an alert URL)"


Send = Callable[[str, str, str], tuple[bool, str]]  # (url, title, body) → (sent, detail)


def load_apprise() -> Any:
    """Import Apprise and its plugins (raise ImportError without the ``alerts`` extra),
    quietly: one plugin imports the standard library's deprecated ``imghdr`` on Python
    3.11/3.12, and Apprise's own
    log lines may quote a URL, so they stay inside Apprise (see :func:`apprise_send`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import apprise
        from apprise.manager_plugins import NotificationManager

        NotificationManager().load_modules()  # lazily loaded otherwise, warnings and all
    logging.getLogger("apprise").propagate = False
    return apprise


def apprise_send(url: str, title: str, body: str) -> tuple[bool, str]:
    """Send one message to one Apprise URL (blocking); return whether it went, and what
    Apprise said when it did not (scrubbed of the URL's parts)."""
    apprise = load_apprise()
    sender = apprise.Apprise()
    if not sender.add(url):
        return False, "Apprise does not understand this URL"
    with apprise.LogCapture(level=logging.WARNING) as captured:
        sent = bool(sender.notify(title=title, body=body))
        said = captured.getvalue() if not sent else ""
    tokens = [part for part in url.replace("://", "/").split("/")[1:] if len(part) >= 4]
    detail = scrub(" ".join(said.split()), [url, *tokens])[:DETAIL_CHARS]
    return sent, detail or ("sent" if sent else "not delivered")


def check_urls(urls: Sequence[str]) -> list[str]:
    """For ``cvsyncd check`` and the daemon's start: what is wrong with the alert URLs
    (empty when all are usable), each URL shown by its position and scheme only."""
    if not urls:
        return []
    try:
        apprise = load_apprise()
    except ImportError:
        return [
            "alerts need Apprise, which is not installed: pip install 'cvsyncd[alerts]' "
            "(the container image has it)"
        ]
    problems = []
    for position, url in enumerate(urls, 1):
        if apprise.Apprise.instantiate(url) is None:
            problems.append(
                f"[alerts] urls: URL number {position} ({shown_url(url)}) is not one Apprise "
                "can use: see its list of services for the exact form"
            )
    return problems


@dataclass
class _Group:
    alerts: list[Alert] = field(default_factory=list)
    more: int = 0
    task: asyncio.Task[None] | None = None


class Alerter:
    """Gathers alerts by kind and sends each group as one message (see the module)."""

    def __init__(
        self,
        settings: AlertSettings,
        send: Send = apprise_send,
        *,
        backoff: float = BACKOFF_SECONDS,
        attempts: int = ATTEMPTS,
        host: str | None = None,
    ):
        self.settings = settings
        self.send = send
        self.backoff = backoff
        self.attempts = attempts
        self.host = socket.gethostname() if host is None else host
        self.log = structlog.get_logger("cvsyncd.alerts")
        self._groups: dict[str, _Group] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.settings.urls)

    def reconfigure(self, settings: AlertSettings) -> None:
        self.settings = settings

    def post(self, alert: Alert) -> None:
        """Take an alert (from the event loop; returns at once). Sent within
        ``group_seconds``, together with the others of its kind."""
        if not self.enabled or alert.kind not in self.settings.events:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a command without an event loop: it sends no alerts
            return
        group = self._groups.setdefault(alert.kind, _Group())
        if len(group.alerts) < KEPT:
            group.alerts.append(alert)
        else:
            group.more += 1
        if group.task is None:
            group.task = loop.create_task(self._gather(alert.kind))

    async def _gather(self, kind: str) -> None:
        try:
            await asyncio.sleep(self.settings.group_seconds)
        finally:
            self._flush(kind)

    def _flush(self, kind: str) -> None:
        """Turn the group of ``kind`` into a message and start sending it."""
        group = self._groups.pop(kind, None)
        if group is None or not group.alerts:
            return
        title, body = compose(kind, group.alerts, group.more, self.host)
        for url in self.settings.urls:
            task = asyncio.get_running_loop().create_task(self._deliver(url, kind, title, body))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _deliver(self, url: str, kind: str, title: str, body: str) -> None:
        """Send one message to one URL, retrying with back-off; log how it went."""
        shown = shown_url(url)
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                SEND_THREADS, thread_name_prefix="cvsyncd-alert"
            )
        loop = asyncio.get_running_loop()
        detail = ""
        for attempt in range(1, self.attempts + 1):
            try:
                sent, detail = await loop.run_in_executor(self._pool, self.send, url, title, body)
            except Exception as exc:  # an alert must never take anything down with it
                sent, detail = False, scrub(f"{type(exc).__name__}: {exc}", [url])
            if sent:
                self.log.info(ev.ALERT_SENT, alert=kind, to=shown, attempts=attempt)
                return
            if attempt < self.attempts:
                wait = backoff_delay(attempt, base=self.backoff, cap=MAX_BACKOFF_SECONDS)
                self.log.warning(
                    ev.ALERT_RETRY, alert=kind, to=shown, attempt=attempt, detail=detail
                )
                await asyncio.sleep(wait)
        self.log.error(ev.ALERT_FAILED, alert=kind, to=shown, attempts=self.attempts, detail=detail)

    async def drain(self, timeout: float) -> None:
        """At shutdown: send what is gathering now, wait ``timeout`` seconds at most for
        the messages under way, then give up on them."""
        gathering = [g.task for g in self._groups.values() if g.task is not None]
        for task in gathering:
            task.cancel()
        await asyncio.gather(*gathering, return_exceptions=True)
        for kind in list(self._groups):  # a task cancelled before it began sent nothing
            self._flush(kind)
        sending = list(self._sending)
        if sending:
            _done, pending = await asyncio.wait(sending, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._pool is not None:
            with contextlib.suppress(RuntimeError):
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
