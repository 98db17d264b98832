"""The daemon: startup, the main loop, and a clean stop.

``startup``: lock and open the store, sweep our own temp files, recover interrupted jobs,
start the observers — then tell systemd ``READY=1``.
``main loop``: the watcher, the pipeline and the supervisor (reload, status, watchdog) run
side by side until a signal asks to stop.
``shutdown``: the first SIGTERM/SIGINT says ``STOPPING=1``, stops taking new work and lets
running steps finish (see ``Pipeline``); a second one forces. SIGHUP reloads the config.
Signal handlers only set events; the loops do the work.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import structlog

from cvsyncd import __version__
from cvsyncd.aio import wait_for_any
from cvsyncd.api import client_for
from cvsyncd.config import Config
from cvsyncd.fileops import sweep_temp_files
from cvsyncd.pipeline import Pipeline
from cvsyncd.sdnotify import Notifier
from cvsyncd.store import Store
from cvsyncd.supervisor import Supervisor
from cvsyncd.watcher import Watcher

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Daemon:
    def __init__(self, config: Config, api_key: str, log_level: str | None = None):
        self.config = config
        self.api_key = api_key
        self.log_level = log_level  # from the command line: wins over the config
        self.log = structlog.get_logger("cvsyncd.service")
        self.stop = asyncio.Event()
        self.force = asyncio.Event()
        self.notifier = Notifier.from_environment()
        self.supervisor: Supervisor | None = None

    async def run(self) -> None:
        """Run until stopped by a signal (or ``self.stop``)."""
        self._install_signal_handlers()  # first: a stop during startup is a clean stop too
        try:
            await self._run()
        finally:
            self._remove_signal_handlers()
        self.log.info("stopped")

    async def _run(self) -> None:
        store = Store.open(self.config.daemon.state_dir, daemon=True)
        try:
            self._sweep()
            async with client_for(self.config.cleanvoice, self.api_key) as client:
                pipeline = Pipeline(self.config, store, client)
                pipeline.recover()
                watcher = Watcher(
                    self.config.folders,
                    self.config.daemon.settle_seconds,
                    pipeline.intake,
                    pipeline.is_known,
                )
                pipeline.unavailable = watcher.unavailable
                self.supervisor = Supervisor(
                    self.config, store, client, pipeline, watcher, self.notifier, self.log_level
                )
                tasks = [
                    asyncio.create_task(watcher.run(self.stop)),
                    asyncio.create_task(pipeline.run(self.stop, self.force)),
                    asyncio.create_task(self.supervisor.run(self.stop)),
                ]
                await wait_for_any(watcher.started, self.stop)
                self.supervisor.turn()  # the first status line, before READY
                self.notifier.ready()
                self.log.info(
                    "started",
                    version=__version__,
                    config=str(self.config.path),
                    state_dir=str(self.config.daemon.state_dir),
                    folders=len(self.config.folders),
                )
                await asyncio.gather(*tasks)
        finally:
            store.close()

    def _sweep(self) -> None:
        """Remove temp files a crash left in our output places (only our own names)."""
        places: set[Path] = set()
        for folder in self.config.folders:
            places.update({folder.outbox, folder.done_dir, folder.failed_dir})
        for place in sorted(places):
            for path in sweep_temp_files(place):
                self.log.info("removed a temp file left by an interrupted write", path=str(path))

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._on_hangup)

    def _remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (*STOP_SIGNALS, signal.SIGHUP):
            loop.remove_signal_handler(sig)

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        if self.stop.is_set():
            self.force.set()
            self.log.warning("second stop signal: stopping now", signal=sig.name)
        else:
            self.stop.set()
            self.notifier.stopping()
            self.log.info(
                "stopping: no new work; finishing what is running "
                "(send the signal again to stop at once)",
                signal=sig.name,
            )

    def _on_hangup(self) -> None:
        if self.supervisor is not None:
            self.supervisor.reload_requested.set()
