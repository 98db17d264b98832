"""The daemon: startup, the main loop, and a clean stop.

``startup``: lock and open the store, sweep our own temp files, recover interrupted jobs.
``main loop``: the watcher and the pipeline run side by side until a signal asks to stop.
``shutdown``: the first SIGTERM/SIGINT stops taking new work and lets running steps finish
(see ``Pipeline``); a second one forces. Signal handlers only set events; the loop does
the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path

import structlog

from cvsyncd import __version__, logs
from cvsyncd.api import CleanvoiceClient
from cvsyncd.config import Config, load_config, read_api_key
from cvsyncd.errors import ConfigError
from cvsyncd.fileops import sweep_temp_files
from cvsyncd.pipeline import Pipeline
from cvsyncd.redact import register_secret
from cvsyncd.store import Store
from cvsyncd.watcher import Watcher

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
SUPERVISE_SECONDS = 3.0
FOLDERS_META_KEY = "folders_unavailable"
FORGET_META_KEY = "forget_generation"


class Daemon:
    def __init__(self, config: Config, api_key: str, log_level: str | None = None):
        self.config = config
        self.api_key = api_key
        self.log_level = log_level  # from the command line: wins over the config
        self.log = structlog.get_logger("cvsyncd.service")
        self.stop = asyncio.Event()
        self.force = asyncio.Event()
        self.reload_requested = asyncio.Event()

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
            cleanvoice = self.config.cleanvoice
            limits = {
                "submit": cleanvoice.submit_requests_per_minute,
                "status": cleanvoice.status_requests_per_minute,
            }
            async with CleanvoiceClient(cleanvoice.base_url, self.api_key, limits=limits) as client:
                pipeline = Pipeline(self.config, store, client)
                pipeline.recover()
                watcher = Watcher(
                    self.config.folders,
                    self.config.daemon.settle_seconds,
                    pipeline.intake,
                    pipeline.is_known,
                )
                pipeline.unavailable = watcher.unavailable
                self.log.info(
                    "started",
                    version=__version__,
                    config=str(self.config.path),
                    state_dir=str(self.config.daemon.state_dir),
                    folders=len(self.config.folders),
                )
                await asyncio.gather(
                    watcher.run(self.stop),
                    pipeline.run(self.stop, self.force),
                    self._supervise(store, client, pipeline, watcher),
                )
        finally:
            store.close()

    async def _supervise(
        self, store: Store, client: CleanvoiceClient, pipeline: Pipeline, watcher: Watcher
    ) -> None:
        """Every few seconds: reload the config when asked or changed; publish the state of
        the folders for ``cvsyncd status``."""
        config_stamp = _stamp(self.config.path)
        shown: str | None = None
        forgotten = store.get_meta(FORGET_META_KEY)
        while not self.stop.is_set():
            if (generation := store.get_meta(FORGET_META_KEY)) != forgotten:
                forgotten = generation  # `cvsyncd forget` ran: its inputs may be taken again
                watcher.rescan_all()
            stamp = _stamp(self.config.path)
            if self.reload_requested.is_set() or stamp != config_stamp:
                self.reload_requested.clear()
                config_stamp = stamp
                self._reload(client, pipeline, watcher)
            paused = {
                f.name: reason
                for f in self.config.folders
                if (reason := watcher.unavailable(f.key))
            }
            text = json.dumps(paused, sort_keys=True) if paused else None
            if text != shown:
                store.set_meta(FOLDERS_META_KEY, text)
                shown = text
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_either(self.stop, self.reload_requested), SUPERVISE_SECONDS)

    def _reload(self, client: CleanvoiceClient, pipeline: Pipeline, watcher: Watcher) -> None:
        """Read the config again; keep the running one if the new one is broken."""
        try:
            config = load_config(self.config.path)
            api_key = read_api_key(config)
        except ConfigError as exc:
            self.log.error(
                "the changed config has problems; still running with the previous one",
                config=str(self.config.path),
                problems=[str(p) for p in exc.problems],
            )
            return
        for name, old, new in (
            ("daemon.state_dir", self.config.daemon.state_dir, config.daemon.state_dir),
            ("cleanvoice.base_url", self.config.cleanvoice.base_url, config.cleanvoice.base_url),
        ):
            if old != new:
                self.log.warning("this setting changes only with a restart", key=name)
        register_secret(api_key)
        client.set_api_key(api_key)
        self.config = config
        pipeline.reconfigure(config)
        watcher.reconfigure(config.folders, config.daemon.settle_seconds)
        logs.set_level(self.log_level or config.daemon.log_level)
        self.log.info("config reloaded", config=str(config.path), folders=len(config.folders))

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
            self.log.info(
                "stopping: no new work; finishing what is running "
                "(send the signal again to stop at once)",
                signal=sig.name,
            )

    def _on_hangup(self) -> None:
        self.reload_requested.set()


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


async def _either(a: asyncio.Event, b: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
