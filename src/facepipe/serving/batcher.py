"""Dynamic batching: take up to ``max_batch_size`` items, waiting at most ``max_wait_s`` after the first.

A worker that finds other workers idle takes only its share of what is queued: four requests and two
idle workers make two batches of two, run side by side, not one batch of four on one core while the
other core waits.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from typing import Generic, TypeVar

T = TypeVar("T")


class Batcher(Generic[T]):
    """A bounded queue that hands out batches. ``put_nowait`` raises ``queue.Full`` when full."""

    def __init__(self, max_batch_size: int, max_wait_s: float, capacity: int) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        self.max_batch_size = max_batch_size
        self.max_wait_s = max(0.0, max_wait_s)
        self._queue: queue.Queue[T | None] = queue.Queue(maxsize=capacity)
        self._idle = 0  # workers blocked waiting for a first item
        self._idle_lock = threading.Lock()

    def put_nowait(self, item: T) -> None:
        self._queue.put_nowait(item)

    def put(self, item: T, timeout: float | None = None) -> None:
        self._queue.put(item, timeout=timeout)

    def qsize(self) -> int:
        return self._queue.qsize()

    @property
    def capacity(self) -> int:
        return self._queue.maxsize

    def close(self, workers: int) -> None:
        """Wake every worker with a stop marker (blocking until there is room)."""
        for _ in range(workers):
            self._queue.put(None)

    def take(self) -> list[T] | None:
        """Block for the first item, then gather more until full or ``max_wait_s`` passed.

        Returns None when the batcher was closed and nothing is left before the stop marker.
        """
        with self._idle_lock:
            self._idle += 1
        try:
            first = self._queue.get()
        finally:
            with self._idle_lock:
                self._idle -= 1
                others = self._idle
        if first is None:
            return None
        batch = [first]
        limit = self.max_batch_size
        if others:  # leave the idle workers their share of what is already queued
            limit = min(limit, max(1, math.ceil((1 + self._queue.qsize()) / (1 + others))))
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < limit:
            try:
                # Items already queued are taken without waiting; only then do we wait for more.
                nxt = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    nxt = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if nxt is None:
                self._queue.put(None)  # leave the stop marker for this worker's next take()
                break
            batch.append(nxt)
        return batch
