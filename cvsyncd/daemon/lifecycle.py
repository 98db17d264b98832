"""The daemon: startup, the main loop, and a clean stop.

``startup``: lock and open the store, sweep our own temp files, recover interrupted jobs,
start the observers — then tell systemd ``READY=1``.
``main loop``: the watcher, the pipeline and the supervisor (reload, status, watchdog) run
side by side until a signal asks to stop.
``shutdown``: the first SIGTERM/SIGINT says ``STOPPING=1``, stops taking new work and lets
running steps finish (see ``Pipeline``); a second one forces. SIGHUP reloads the config;
SIGUSR1 (sent by ``pause``, ``resume``, ``forget`` and ``retry``) says the store changed.
Signal handlers only set events; the loops do the work.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

import structlog

from cvsyncd import __version__
from cvsyncd import events as ev
from cvsyncd.aio import wait_for_any
from cvsyncd.cleanvoice.client import CleanvoiceClient, client_for
from cvsyncd.config import Config
from cvsyncd.daemon.stores import open_store, share_budget
from cvsyncd.daemon.supervisor import Supervisor
from cvsyncd.daemon.systemd import Notifier
from cvsyncd.inbox.watcher import Watcher
from cvsyncd.jobs import Store
from cvsyncd.jobs.lock import WAKE_SIGNAL
from cvsyncd.notify.alerts import check_urls
from cvsyncd.outbox.files import sweep_temp_files
from cvsyncd.pipeline.runtime import Runtime
from cvsyncd.pipeline.scheduler import Pipeline
from cvsyncd.urls import is_loopback

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Daemon:
    """One running daemon: :meth:`run` is startup → main loop → shutdown."""

    def __init__(self, config: Config, api_key: str, log_level: str | None = None):
        self.config = config
        self.api_key = api_key
        self.log_level = log_level  # from the command line: wins over the config
        self.log = structlog.get_logger("cvsyncd.service")
        self.stop = asyncio.Event()
        self.force = asyncio.Event()
        self.store_changed = asyncio.Event()  # WAKE_SIGNAL: a command wrote to the store
        self.notifier = Notifier.from_environment()
        self.supervisor: Supervisor | None = None
        self._store: Store | None = None
        self._client: CleanvoiceClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._web_password: str | None = None

    async def run(self) -> None:
        """Run until stopped by a signal (or ``self.stop``)."""
        self._install_signal_handlers()  # first: a stop during startup is a clean stop too
        try:
            try:
                await self.startup()
                await self.main_loop()
            finally:
                await self.shutdown()
        finally:
            self._remove_signal_handlers()
        self.log.info(ev.DAEMON_STOPPED)

    async def startup(self) -> None:
        """Lock and open the store, sweep our temp files, make the one runtime, recover
        interrupted jobs, start the loops; once the observers run, tell systemd READY."""
        listener = self._listen()  # first: an address in use stops the start at once
        # the lock says this daemon handles WAKE_SIGNAL: its handler is installed already
        store = self._store = open_store(self.config, daemon=True, wakes=True)
        self._sweep()
        client = self._client = client_for(self.config.cleanvoice, self.api_key)
        share_budget(self.config, store, client)
        runtime = Runtime(self.config, store, client)
        for problem in check_urls(self.config.alerts.urls):
            self.log.error(ev.ALERT_UNUSABLE, problem=problem)
        pipeline = Pipeline(runtime)
        pipeline.recover()
        # what a folder seen for the first time holds now is its backlog: weighed before
        # the watcher offers any of it (pipeline/backlog.py)
        await pipeline.intake_steps.backlogs.decide_all(self.config.folders)
        watcher = Watcher(
            self.config.folders,
            self.config.daemon.settle_seconds,
            pipeline.intake,
            pipeline.is_known,
            on_unavailable=runtime.notices.inbox_unavailable,
        )
        pipeline.unavailable = watcher.unavailable
        self.supervisor = Supervisor(
            runtime, pipeline, watcher, self.notifier, self.log_level, self.store_changed
        )
        self._tasks = [
            asyncio.create_task(watcher.run(self.stop), name="watcher"),
            asyncio.create_task(pipeline.run(self.stop, self.force), name="scheduler"),
            asyncio.create_task(self.supervisor.run(self.stop), name="supervisor"),
        ]
        if listener is not None:
            self._tasks.append(
                asyncio.create_task(self._serve_web(listener, runtime, watcher), name="web")
            )
        await wait_for_any(watcher.started, self.stop)
        self.supervisor.turn()  # the first status line, before READY
        self.notifier.ready()
        self.log.info(
            ev.DAEMON_STARTED,
            version=__version__,
            config=str(self.config.path),
            state_dir=str(self.config.daemon.state_dir),
            folders=len(self.config.folders),
        )

    async def main_loop(self) -> None:
        """The watcher, the scheduler and the supervisor turn until a stop is asked for;
        the scheduler then drains (see ``Pipeline.run``)."""
        await asyncio.gather(*self._tasks)

    async def shutdown(self) -> None:
        """Whatever happened: stop the loops still running, close the client and the store
        (which releases the state directory's lock)."""
        self.stop.set()
        pending = [task for task in self._tasks if not task.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
        if self._store is not None:
            self._store.close()

    def _listen(self) -> socket.socket | None:
        """The dashboard's socket, bound now (None without ``[web]``); its password read."""
        if self.config.web is None:
            return None
        from cvsyncd.web import read_password
        from cvsyncd.web.server import bind

        settings = self.config.web
        if settings.password_file is not None:
            self._web_password = read_password(settings.password_file, str(self.config.path))
        return bind(settings, self.config.path)

    async def _serve_web(self, listener: socket.socket, runtime: Runtime, watcher: Watcher) -> None:
        """The dashboard, /healthz and /metrics, in this loop until the daemon stops."""
        from cvsyncd.web.app import Dashboard, Hooks
        from cvsyncd.web.server import make_server, serve

        assert self.supervisor is not None and self.config.web is not None
        supervisor = self.supervisor

        def health() -> tuple[bool, str]:
            verdict = supervisor.health()
            return verdict.ok, verdict.text

        dashboard = Dashboard(
            runtime,
            runtime.client.counters,
            Hooks(health=health, wake=self.store_changed.set, unavailable=watcher.unavailable),
            password=self._web_password,
            loopback=is_loopback(self.config.web.host),
        )
        server = make_server(dashboard.app())
        self.log.info(ev.WEB_STARTED, listen=self.config.web.listen, login=bool(self._web_password))
        try:
            await serve(server, listener, self.stop)
        except Exception as exc:  # the recordings matter more than the dashboard
            self.log.error(ev.WEB_FAILED, error=f"{type(exc).__name__}: {exc}")

    def _sweep(self) -> None:
        """Remove temp files a crash left in our output places (only our own names)."""
        places: set[Path] = set()
        for folder in self.config.folders:
            places.update({folder.outbox, folder.done_dir, folder.failed_dir})
        # a video's sound extracted for an upload that a crash interrupted
        places.add(self.config.daemon.state_dir / "extract")
        for place in sorted(places):
            for path in sweep_temp_files(place):
                self.log.info(ev.DAEMON_TEMP_REMOVED, path=str(path))

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._on_hangup)
        loop.add_signal_handler(WAKE_SIGNAL, self.store_changed.set)

    def _remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (*STOP_SIGNALS, signal.SIGHUP, WAKE_SIGNAL):
            loop.remove_signal_handler(sig)
        # a command may still have read the lock before it was released: a late wake must
        # not end the process (SIGUSR1's default) while it finishes its last lines
        signal.signal(WAKE_SIGNAL, signal.SIG_IGN)

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        if self.stop.is_set():
            self.force.set()
            self.log.warning(ev.DAEMON_STOP_NOW, signal=sig.name)
        else:
            self.stop.set()
            self.notifier.stopping()
            self.log.info(
                ev.DAEMON_STOPPING,
                signal=sig.name,
            )

    def _on_hangup(self) -> None:
        if self.supervisor is not None:
            self.supervisor.reload_requested.set()
