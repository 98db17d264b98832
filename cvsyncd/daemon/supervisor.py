"""What the running daemon does beside its work: a turn every few seconds while there is
work, every REST_SECONDS at rest, and at once when a signal asks.

- reloads the config on SIGHUP or when the file changed (a broken one keeps the old);
- obeys ``cvsyncd pause``/``resume``, ``forget`` and ``retry`` (they write to the store,
  then wake the daemon with SIGUSR1: see ``jobs/lock.py``);
- publishes the folders' state for ``cvsyncd status``, and a status line for systemd;
- pings systemd's watchdog at half its interval, but only while the scheduler and the
  watcher still turn: a stalled loop stops the pings, and systemd restarts the daemon;
  the same verdict goes to ``health.json`` for ``cvsyncd health`` (``daemon/health.py``),
  every HEALTH_SECONDS without systemd.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import structlog

from cvsyncd import events as ev
from cvsyncd.aio import wait_for_any
from cvsyncd.config import load_config, read_api_key
from cvsyncd.daemon import health as health_rule
from cvsyncd.daemon import logs
from cvsyncd.daemon.systemd import Notifier, status_line
from cvsyncd.errors import ConfigError, StoreUnavailable
from cvsyncd.inbox.places import overlaps
from cvsyncd.inbox.watcher import Watcher
from cvsyncd.jobs import ACTIVE, WORKING, JobState
from cvsyncd.pipeline.runtime import Runtime, RuntimePart
from cvsyncd.pipeline.scheduler import Pipeline
from cvsyncd.redact import register_secret

TURN_SECONDS = 3.0  # while jobs are active: the status line follows their progress
REST_SECONDS = 10.0  # no active job: only a config edit without SIGHUP waits this long
MAX_REFUSED_SHOWN = 100
STATUS_STATES = (*ACTIVE, JobState.NEEDS_ATTENTION)


class Supervisor(RuntimePart):
    def __init__(
        self,
        runtime: Runtime,
        pipeline: Pipeline,
        watcher: Watcher,
        notifier: Notifier,
        log_level: str | None,
        store_changed: asyncio.Event | None = None,
    ):
        self.runtime = runtime
        self.pipeline = pipeline
        self.watcher = watcher
        self.notifier = notifier
        self.log_level = log_level
        self.log = structlog.get_logger("cvsyncd.service")
        self.reload_requested = asyncio.Event()
        self.store_changed = store_changed or asyncio.Event()
        self.busy = True  # jobs were active at the last turn (decides the next wait)
        self._config_stamp = _stamp(runtime.config.path)
        self._folders_shown: dict[str, str] | None = None
        self._refused_shown: list[dict[str, str]] | None = None
        self._status_shown: str | None = None
        # the holds last logged: the scheduler reads them too, on its own passes, so its
        # copy may already be the new one when a turn comes to log the change
        self._holds_shown = pipeline.holds
        self._forgotten = runtime.store.forget_generation()
        self._outage_shown = False
        # the watchdog's interval under systemd; the health verdict's without it
        self._watchdog_interval = notifier.watchdog_interval()
        self.health_interval = self._watchdog_interval or health_rule.HEALTH_SECONDS
        # a loop busy (not resting) this long without a turn is stuck
        self.stall_limit = (
            2 * self._watchdog_interval
            if self._watchdog_interval is not None
            else health_rule.STALL_SECONDS
        )

    async def run(self, stop: asyncio.Event) -> None:
        watchdog = asyncio.create_task(self._watchdog(stop))
        try:
            while not stop.is_set():
                if self.store_changed.is_set():
                    self.store_changed.clear()
                    self.pipeline.wake()  # a retried job may start now
                self.watcher.news.clear()
                try:
                    self.turn()
                except StoreUnavailable as exc:  # the shared store is away (pipeline/outage.py)
                    self.runtime.outage.down(exc)
                    self._show_outage()
                # busy: a turn every few seconds anyway; at rest, the watcher's news (a new
                # job, an inbox gone or back, an entry refused) changes what is shown
                news = () if self.busy else (self.watcher.news,)
                await wait_for_any(
                    stop,
                    self.reload_requested,
                    self.store_changed,
                    *news,
                    timeout=TURN_SECONDS if self.busy else REST_SECONDS,
                )
        finally:
            watchdog.cancel()
            await asyncio.gather(watchdog, return_exceptions=True)

    def _show_outage(self) -> None:
        line = f"paused: {self.runtime.outage.reason}"
        if line != self._status_shown:
            self.notifier.status(line)
            self._status_shown = line
        self._outage_shown = True

    def turn(self) -> None:
        """One round of supervision (cheap: a few indexed queries and a stat)."""
        if self._outage_shown and not self.runtime.outage.active:
            self._outage_shown = False
            self.watcher.rescan_all()  # what arrived while the store was away
        holds = self.store.holds()
        if holds != self._holds_shown:
            self.log.info(
                ev.OPERATOR_PAUSED if holds else ev.OPERATOR_RESUMED,
                folders=sorted(holds),
            )
            self._holds_shown = holds
        if holds != self.pipeline.holds:
            self.pipeline.holds = holds
            self.pipeline.wake()
        if (generation := self.store.forget_generation()) != self._forgotten:
            self._forgotten = generation  # `cvsyncd forget` ran: its inputs may be taken again
            self.watcher.rescan_all()
        stamp = _stamp(self.config.path)
        if self.reload_requested.is_set() or stamp != self._config_stamp:
            self.reload_requested.clear()
            self._config_stamp = stamp
            self.reload()
        self._publish()

    def _publish(self) -> None:
        paused = {
            f.name: reason
            for f in self.config.folders
            if (reason := self.watcher.unavailable(f.key))
        }
        if paused != self._folders_shown:
            self.store.set_unavailable_folders(paused)
            self._folders_shown = paused
            self.pipeline.wake()  # jobs of an inbox that is back may go on
        refused = self.watcher.refusals()[:MAX_REFUSED_SHOWN]
        if refused != self._refused_shown:
            self.store.set_refused_entries(refused)
            self._refused_shown = refused
        counts = {
            s.value: n for s, n in self.store.count_by_state(STATUS_STATES, mine=True).items()
        }
        # held jobs wait for a person or a budget: they keep nobody busy
        self.busy = any(counts.get(state.value) for state in WORKING)
        reasons = [self.pipeline.pause.reason] if self.pipeline.pause.reason else []
        reasons += [
            f"{'all folders' if k == '*' else k} by the operator" for k in self.pipeline.holds
        ]
        reasons += [f"folder {name}: inbox unavailable" for name in paused]
        line = status_line(counts, "; ".join(reasons) or None, len(self.config.folders))
        if line != self._status_shown:
            self.notifier.status(line)
            self._status_shown = line

    def reload(self) -> None:
        """Read the config again; keep the running one if the new one is broken."""
        self.notifier.reloading()
        try:
            config = load_config(self.config.path)
            problems = overlaps(config)
            if problems:
                raise ConfigError(problems)
            api_key = read_api_key(config)
        except ConfigError as exc:
            self.log.error(
                ev.CONFIG_REJECTED,
                config=str(self.config.path),
                problems=[str(p) for p in exc.problems],
            )
            self.notifier.ready()
            return
        for name, old, new in (
            ("daemon.state_dir", self.config.daemon.state_dir, config.daemon.state_dir),
            ("cleanvoice.base_url", self.config.cleanvoice.base_url, config.cleanvoice.base_url),
            ("web", self.config.web, config.web),
        ):
            if old != new:
                self.log.warning(ev.CONFIG_NEEDS_RESTART, key=name)
        register_secret(api_key)
        self.runtime.client.set_api_key(api_key)
        self.runtime.reconfigure(config)  # every part of the pipeline, at once
        self.pipeline.wake()  # a raised spend cap may let held jobs go now
        self.watcher.reconfigure(config.folders, config.daemon.settle_seconds)
        logs.set_level(self.log_level or config.daemon.log_level)
        self.log.info(ev.CONFIG_RELOADED, config=str(config.path), folders=len(config.folders))
        self.notifier.ready()

    def health(self) -> health_rule.Verdict:
        """The daemon's health now: its loops turn and its store answers (``/healthz``)."""
        return health_rule.check(self._loops(), self.store, self.stall_limit)

    def _loops(self) -> list[tuple[str, health_rule.Loop]]:
        return [("scheduler", self.pipeline), ("watcher", self.watcher)]

    async def _watchdog(self, stop: asyncio.Event) -> None:
        """Every ``interval``: judge the daemon's health, ping systemd's watchdog only when
        it is good, and write the verdict for ``cvsyncd health`` (daemon/health.py)."""
        state_dir = self.config.daemon.state_dir
        try:
            while not stop.is_set():
                verdict = self.health()
                if verdict.ok:
                    if self._watchdog_interval is not None:
                        self.notifier.watchdog_ping()
                else:
                    stalled = health_rule.stalled(self._loops(), self.stall_limit)
                    self.log.error(ev.DAEMON_STUCK, stalled=stalled, problems=verdict.text)
                health_rule.write_verdict(state_dir, verdict, self.health_interval)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.health_interval)
        finally:
            health_rule.remove_verdict(state_dir)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)
