"""The one object the running pipeline shares, and that a reload swaps in one place.

The config, the job store, the Cleanvoice client, the account pause and the notices are
held here. Every part of the pipeline (the scheduler, intake, each step, the outcomes)
reads them through its :class:`Runtime`, so a reloaded config takes effect everywhere at
the next step by one assignment (:meth:`Runtime.reconfigure`), instead of being handed
to each part again. A step that is running keeps the values it began with.
"""

from __future__ import annotations

from cvsyncd.cleanvoice.client import CleanvoiceClient
from cvsyncd.config import Config, Folder
from cvsyncd.jobs import Job, Store
from cvsyncd.jobs.spending import CAPS
from cvsyncd.notify.alerts import Alerter
from cvsyncd.pipeline.account import AccountPause
from cvsyncd.pipeline.notices import Notices
from cvsyncd.pipeline.outage import StoreOutage


class Runtime:
    """Config, store, client, account pause and notices of one running pipeline."""

    def __init__(self, config: Config, store: Store, client: CleanvoiceClient):
        self.config = config
        self.store = store
        self.client = client
        self.notices = Notices(store, Alerter(config.alerts))
        self.pause = AccountPause(store, config, on_pause=self.notices.account_paused)
        # the shared store away (pipeline/outage.py), said to people as an alert too
        self.outage = StoreOutage(on_down=self.notices.store_unavailable)
        # job id → the id of the edit its create made, while that is not yet stored (a
        # store that fails just then must not turn a known edit into an ambiguous one)
        self.created_edits: dict[int, str] = {}

    def reconfigure(self, config: Config) -> None:
        """Use ``config`` from the next step on. Jobs held by a cap are weighed again at
        once when the caps changed (a raised cap lets them go)."""
        old, self.config = self.config, config
        if _caps(old) != _caps(config):
            self.store.wake_held(CAPS)
        self.pause.config = config
        if self.notices.alerter is not None:
            self.notices.alerter.reconfigure(config.alerts)

    def folder_of(self, job: Job) -> Folder | None:
        """The folder a job belongs to in the current config (None: no longer there)."""
        return self.folder_by_key(job.folder)

    def folder_by_key(self, key: str) -> Folder | None:
        return next((f for f in self.config.folders if f.key == key), None)


class RuntimePart:
    """A part of the pipeline: it reads the shared values through its runtime."""

    runtime: Runtime

    @property
    def config(self) -> Config:
        return self.runtime.config

    @property
    def store(self) -> Store:
        return self.runtime.store

    @property
    def client(self) -> CleanvoiceClient:
        return self.runtime.client


def _caps(config: Config) -> tuple[object, ...]:
    """The settings the spend guard's caps come from."""
    return (config.budget, tuple((f.key, f.hours_per_month) for f in config.folders))
