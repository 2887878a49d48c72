"""A replica's facepipe metrics, exported through Ray's own metrics pipeline.

Ray users scrape each node's metrics agent (``ray start --metrics-export-port``; the head writes every
node's address to ``/tmp/ray/prom_metrics_service_discovery.json`` for Prometheus' file-based service
discovery). Every ``interval_s`` the replica copies each sample of its own Prometheus registry (the same
one its ``/metrics`` renders) into a Ray Serve gauge of the same name, which Ray exports as
``ray_<name>`` with the labels ``replica``, ``deployment`` and ``application`` added. Counters and
histogram buckets keep their cumulative values, so ``rate()`` and ``histogram_quantile()`` work on them
as on the single server's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry
from ray.serve import metrics

log = logging.getLogger(__name__)


class MetricsBridge:
    def __init__(
        self, registry: CollectorRegistry, interval_s: float, before: Callable[[], None] = lambda: None
    ) -> None:
        self.registry, self.interval_s, self.before = registry, interval_s, before
        self.gauges: dict[str, tuple[Any, tuple[str, ...]]] = {}
        self._task: asyncio.Task[None] | None = None

    def copy(self) -> int:
        """Copy every sample now; how many were copied."""
        n = 0
        self.before()  # e.g. the in-flight gauge, set at scrape time
        for family in self.registry.collect():
            for s in family.samples:
                gauge, keys = self._gauge(s.name, tuple(sorted(s.labels)), family.documentation)
                gauge.set(s.value, tags={k: str(s.labels.get(k, "")) for k in keys})
                n += 1
        return n

    def _gauge(self, name: str, keys: tuple[str, ...], doc: str) -> tuple[Any, tuple[str, ...]]:
        known = self.gauges.get(name)
        if known is None or not set(keys) <= set(known[1]):
            all_keys = tuple(sorted(set(keys) | set(known[1] if known else ())))
            keys_arg: Any = all_keys  # Ray annotates tag_keys as tuple[str], meaning any length
            known = (metrics.Gauge(name, description=doc, tag_keys=keys_arg), all_keys)
            self.gauges[name] = known
        return known

    async def start(self) -> None:
        if self.interval_s > 0:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            try:
                self.copy()
            except Exception:
                log.exception("copying metrics to Ray failed")
            await asyncio.sleep(self.interval_s)
