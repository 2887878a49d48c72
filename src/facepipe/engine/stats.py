"""Counters that the tracer reads and resets: per stage and per pipeline (the seed's DAG numbers)."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np


@dataclass(slots=True)
class StageSnapshot:
    name: str
    batches: int
    items: int
    in_ms: float
    midp_ms: float
    out_ms: float
    idle: float
    batch_sizes: dict[int, int]


class StageStats:
    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._since = time.monotonic()
        self._batches = 0
        self._items = 0
        self._wait_ms = 0.0
        self._run_ms = 0.0
        self._sizes: Counter[int] = Counter()
        self.out_ms = 0.0
        self.dropped = 0
        self.cancelled = 0  # items skipped because their submitter was cancelled (cumulative)
        self.batch_errors = 0
        # Cumulative, never reset: read by the Prometheus collector.
        self.total_items = 0
        self.total_batches = 0
        self.total_run_s = 0.0
        self.total_wait_s = 0.0
        self.total_sizes: Counter[int] = Counter()

    def record_batch(self, size: int, run_ms: float, waits_ms: list[float]) -> None:
        with self._lock:
            self._batches += 1
            self._items += size
            self._run_ms += run_ms
            self._wait_ms += sum(waits_ms)
            self._sizes[size] += 1
            self.total_items += size
            self.total_batches += 1
            self.total_run_s += run_ms / 1e3
            self.total_wait_s += sum(waits_ms) / 1e3
            self.total_sizes[size] += 1

    def snapshot(self, workers: int) -> StageSnapshot:
        """Means since the last snapshot, then reset."""
        with self._lock:
            now = time.monotonic()
            span_ms = max((now - self._since) * 1e3 * max(workers, 1), 1e-9)
            b, n = max(self._batches, 1), max(self._items, 1)
            snap = StageSnapshot(
                self.name,
                self._batches,
                self._items,
                self._wait_ms / n,
                self._run_ms / b,
                self.out_ms / b,
                max(0.0, 1.0 - self._run_ms / span_ms),
                dict(sorted(self._sizes.items())),
            )
            self._since, self._batches, self._items = now, 0, 0
            self._wait_ms = self._run_ms = self.out_ms = 0.0
            self._sizes.clear()
            return snap


@dataclass(slots=True)
class RequestSnapshot:
    count: int
    qps: float
    success: float
    error_ids: list[int]
    latency_ms: dict[str, float] = field(default_factory=dict)


PERCENTILES = (50, 60, 70, 80, 90, 95, 99)


class RequestStats:
    """Request latencies and failures since the last snapshot. Bounded: with no tracer reading them,
    only the most recent ``window`` latencies and 100 failed ids are kept (counts stay exact)."""

    def __init__(self, window: int = 65536) -> None:
        self._lock = threading.Lock()
        self._window = window
        self._since = time.monotonic()
        self._count = 0
        self._failed = 0
        self._latencies: deque[float] = deque(maxlen=window)
        self._errors: deque[int] = deque(maxlen=100)

    def record(self, latency_ms: float, request_id: int, ok: bool) -> None:
        with self._lock:
            self._count += 1
            self._latencies.append(latency_ms)
            if not ok:
                self._failed += 1
                self._errors.append(request_id)

    def snapshot(self) -> RequestSnapshot:
        with self._lock:
            now = time.monotonic()
            n, failed, lat, errors = self._count, self._failed, list(self._latencies), list(self._errors)
            span = max(now - self._since, 1e-9)
            self._since, self._count, self._failed = now, 0, 0
            self._latencies, self._errors = deque(maxlen=self._window), deque(maxlen=100)
        dist = {"ave": float(np.mean(lat)) if lat else 0.0}
        for p in PERCENTILES:
            dist[f".{p}"] = float(np.percentile(lat, p)) if lat else 0.0
        return RequestSnapshot(n, n / span, (n - failed) / n if n else 1.0, errors, dist)
