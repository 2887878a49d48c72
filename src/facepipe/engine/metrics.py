"""Prometheus metrics: requests by endpoint and status, latency, in-flight, and per-stage queue wait,
batch size, compute time and queue depth (read from the stages at scrape time)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from facepipe.engine.pipeline import Pipeline

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0)


class StageCollector(Collector):
    def __init__(self, pipelines: Callable[[], list[Pipeline]]) -> None:
        self._pipelines = pipelines

    def collect(self) -> Iterator[Metric]:
        labels = ["pipeline", "stage"]
        items = CounterMetricFamily("facepipe_stage_items", "Items processed by a stage", labels=labels)
        batches = CounterMetricFamily("facepipe_stage_batches", "Batches run by a stage", labels=labels)
        compute = CounterMetricFamily("facepipe_stage_compute_seconds", "Op compute time", labels=labels)
        wait = CounterMetricFamily(
            "facepipe_stage_queue_wait_seconds", "Time items waited in queue", labels=labels
        )
        depth = GaugeMetricFamily(
            "facepipe_stage_queue_depth", "Items waiting in a stage queue", labels=labels
        )
        cancelled = CounterMetricFamily(
            "facepipe_stage_cancelled_items",
            "Queued items skipped: their caller was cancelled",
            labels=labels,
        )
        sizes = HistogramMetricFamily(
            "facepipe_stage_batch_size", "Batch sizes run by a stage", labels=labels
        )
        for p in self._pipelines():
            for s in p.stages:
                lv = [p.name, s.name]
                st = s.stats
                items.add_metric(lv, st.total_items)
                batches.add_metric(lv, st.total_batches)
                compute.add_metric(lv, st.total_run_s)
                wait.add_metric(lv, st.total_wait_s)
                depth.add_metric(lv, s.queue_depth()[0])
                cancelled.add_metric(lv, st.cancelled)
                counts = dict(st.total_sizes)
                buckets = [(str(b), sum(c for k, c in counts.items() if k <= b)) for b in BATCH_BUCKETS]
                buckets.append(("+Inf", sum(counts.values())))
                sizes.add_metric(lv, buckets, sum_value=sum(k * c for k, c in counts.items()))
        yield from (items, batches, compute, wait, depth, cancelled, sizes)


class Metrics:
    def __init__(self, pipelines: Callable[[], list[Pipeline]]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "facepipe_requests",
            "Requests by endpoint and status",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "facepipe_request_seconds",
            "Request latency by endpoint",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.variants = Counter(
            "facepipe_variant_requests",
            "Requests answered by each version of a model or service (A/B traffic split)",
            ["model", "version"],
            registry=self.registry,
        )
        self.in_flight = Gauge("facepipe_in_flight", "Requests in flight", registry=self.registry)
        self.registry.register(StageCollector(pipelines))

    def variant(self, model: str, version: str) -> None:
        self.variants.labels(model, version).inc()

    def observe(self, endpoint: str, status: str, seconds: float) -> None:
        self.requests.labels(endpoint, status).inc()
        self.latency.labels(endpoint).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
