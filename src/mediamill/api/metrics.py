"""Prometheus metrics: items processed and failed per processor, job durations, queue depth,
items/batches in flight, per-item latency. One registry per app (no globals at import)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from mediamill.catalog.db import Catalog
from mediamill.catalog.models import Job
from mediamill.core import ItemRef, Outcome
from mediamill.engine.progress import Hook, Progress

LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class _JobsCollector(Collector):
    """Queue depth and jobs per state, read from the catalog at scrape time."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def collect(self) -> Iterator[Any]:
        family = GaugeMetricFamily(
            "mediamill_jobs", "Jobs in the catalog by state", labels=["status"]
        )
        with self.catalog.engine.connect() as conn:
            counts: dict[str, int] = dict(
                conn.execute(select(Job.c.status, func.count()).group_by(Job.c.status)).all()
            )
        for status in ("queued", "running", "paused", "completed", "failed", "cancelled"):
            family.add_metric([status], counts.get(status, 0))
        yield family
        depth = GaugeMetricFamily("mediamill_queue_depth", "Jobs waiting to run")
        depth.add_metric([], counts.get("queued", 0))
        yield depth


class Metrics:
    def __init__(self, catalog: Catalog) -> None:
        self.registry = CollectorRegistry()
        self.items = Counter(
            "mediamill_items_processed",
            "Items processed, by outcome",
            ["processor", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mediamill_item_seconds",
            "Per-item processing time",
            ["processor"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.job_seconds = Histogram(
            "mediamill_job_seconds",
            "Job run time (per run)",
            ["processor", "status"],
            buckets=(1, 5, 30, 60, 300, 900, 3600, 4 * 3600, 86400),
            registry=self.registry,
        )
        self.in_flight_items = Gauge(
            "mediamill_in_flight_items",
            "Items handed to workers",
            ["job_id"],
            registry=self.registry,
        )
        self.in_flight_batches = Gauge(
            "mediamill_in_flight_batches",
            "Batches handed to workers",
            ["job_id"],
            registry=self.registry,
        )
        self.registry.register(_JobsCollector(catalog))

    def hook(self) -> Hook:
        return _MetricsHook(self)


class _MetricsHook(Hook):
    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics
        self.processor = ""

    def on_start(self, progress: Progress) -> None:
        self.processor = progress.processor

    def on_outcome(self, item: ItemRef, outcome: Outcome) -> None:
        self.m.items.labels(self.processor, str(outcome.status)).inc()
        self.m.latency.labels(self.processor).observe(outcome.duration)

    def on_progress(self, progress: Progress) -> None:
        self.m.in_flight_items.labels(progress.job_id).set(progress.in_flight)
        batches = -(-progress.in_flight // max(1, progress.batch_size))
        self.m.in_flight_batches.labels(progress.job_id).set(batches)

    def on_finish(self, progress: Progress) -> None:
        self.m.job_seconds.labels(progress.processor or "unknown", progress.status).observe(
            progress.elapsed
        )
        for gauge in (self.m.in_flight_items, self.m.in_flight_batches):
            with contextlib.suppress(KeyError):
                gauge.remove(progress.job_id)
