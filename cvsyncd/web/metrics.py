"""``/metrics``: the daemon's numbers in Prometheus' text format.

A custom collector on a private registry (no process-wide default registry, nothing
registered at import) reads, at each scrape, the client's counters (``counters.py``: API
requests by endpoint and status, bytes moved, retries) and the store (jobs per state, the
oldest active job), the folders' availability and the last known credit balance.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from cvsyncd.counters import Counters
from cvsyncd.jobs import JobState
from cvsyncd.pipeline.runtime import Runtime
from cvsyncd.web.views import age_seconds


class DaemonCollector(Collector):
    def __init__(
        self,
        runtime: Runtime,
        counters: Counters,
        unavailable: Callable[[str], str | None],
        credit: Callable[[], float | None],
        healthy: Callable[[], bool],
    ):
        self.runtime = runtime
        self.counters = counters
        self.unavailable = unavailable
        self.credit = credit
        self.healthy = healthy

    def collect(self) -> Iterator[Metric]:
        store, config, c = self.runtime.store, self.runtime.config, self.counters
        jobs = GaugeMetricFamily("cvsyncd_jobs", "Jobs per state", labels=["state"])
        counts = store.count_by_state()
        for state in JobState:
            jobs.add_metric([state.value], counts.get(state, 0))
        yield jobs
        requests = CounterMetricFamily(
            "cvsyncd_api_requests",
            "Cleanvoice API requests by endpoint and HTTP status (error: no answer)",
            labels=["endpoint", "status"],
        )
        for (endpoint, status), n in sorted(c.api_requests.items()):
            requests.add_metric([endpoint, status], n)
        yield requests
        yield CounterMetricFamily(
            "cvsyncd_uploaded_bytes", "Bytes uploaded to Cleanvoice", value=c.bytes_uploaded
        )
        yield CounterMetricFamily(
            "cvsyncd_downloaded_bytes",
            "Bytes of results downloaded from Cleanvoice",
            value=c.bytes_downloaded,
        )
        yield CounterMetricFamily(
            "cvsyncd_retries", "Steps scheduled to be tried again after a problem", value=c.retries
        )
        balance = self.credit()
        if balance is not None:
            yield GaugeMetricFamily(
                "cvsyncd_credit_balance",
                "The Cleanvoice account's credit, last known",
                value=balance,
            )
        available = GaugeMetricFamily(
            "cvsyncd_folder_available",
            "1 when the folder's inbox can be watched, 0 when it is unavailable",
            labels=["folder"],
        )
        for folder in config.folders:
            available.add_metric([folder.name], 0 if self.unavailable(folder.key) else 1)
        yield available
        yield GaugeMetricFamily(
            "cvsyncd_oldest_active_job_age_seconds",
            "Age of the oldest job being worked on, held ones aside (0: none)",
            value=age_seconds(store.oldest_working_since()),
        )
        yield GaugeMetricFamily(
            "cvsyncd_healthy",
            "1 while the daemon's loops turn and its store answers",
            value=1 if self.healthy() else 0,
        )


def make_registry(collector: DaemonCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
