"""Dynamic batching: take up to ``max_batch_size`` items, waiting at most ``max_wait_s`` after the first.

A worker that finds other workers idle takes only its share of what is queued: four requests and two
idle workers make two batches of two, run side by side, not one batch of four on one core while the
other core waits.

Waiting workers are woken last-idle-first: under light load the same worker (its caches and its
core still warm) takes request after request; round-robin between two idle workers cost 0.6 ms per
request at concurrency 1 on a 2-core machine.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")
_STOP = object()


class Batcher(Generic[T]):
    """A bounded queue that hands out batches. ``put_nowait`` raises ``queue.Full`` when full."""

    def __init__(self, max_batch_size: int, max_wait_s: float, capacity: int) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        self.max_batch_size = max_batch_size
        self.max_wait_s = max(0.0, max_wait_s)
        self.capacity = capacity
        self._items: deque[object] = deque()
        self._lock = threading.Lock()
        self._not_full = threading.Condition(self._lock)
        self._waiters: list[threading.Condition] = []  # a stack: the last one to wait is woken first
        self._local = threading.local()
        self._idle = 0  # workers waiting for a first item

    def put_nowait(self, item: T) -> None:
        with self._lock:
            if len(self._items) >= self.capacity:
                raise queue.Full
            self._append(item)

    def put(self, item: T, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` for room (backpressure between stages); ``queue.Full`` after that."""
        with self._lock:
            if not self._not_full.wait_for(lambda: len(self._items) < self.capacity, timeout):
                raise queue.Full
            self._append(item)

    def qsize(self) -> int:
        return len(self._items)

    def close(self, workers: int) -> None:
        """Wake every worker with a stop marker (past the capacity: stopping never blocks)."""
        with self._lock:
            for _ in range(workers):
                self._append(_STOP)

    def _append(self, item: object) -> None:
        self._items.append(item)
        if self._waiters:
            self._waiters.pop().notify()

    def _wait(self, timeout: float | None) -> None:
        """Sleep (lock held on entry and exit) until an item arrives or ``timeout`` passes."""
        cond = getattr(self._local, "cond", None)
        if cond is None:
            cond = self._local.cond = threading.Condition(self._lock)
        self._waiters.append(cond)
        if not cond.wait(timeout) and cond in self._waiters:
            self._waiters.remove(cond)

    def _pop(self) -> object:
        item = self._items.popleft()
        self._not_full.notify()
        return item

    def take(self) -> list[T] | None:
        """Block for the first item, then gather more until full or ``max_wait_s`` passed.

        Returns None when the batcher was closed and nothing is left before the stop marker.
        """
        with self._lock:
            self._idle += 1
            while not self._items:
                self._wait(None)
            self._idle -= 1
            first = self._pop()
            if first is _STOP:
                return None
            batch: list[T] = [first]  # type: ignore[list-item]
            limit = self.max_batch_size
            if self._idle:  # leave the idle workers their share of what is already queued
                limit = min(limit, max(1, math.ceil((1 + len(self._items)) / (1 + self._idle))))
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < limit:
                if not self._items:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._wait(remaining)
                    continue
                if self._items[0] is _STOP:  # left for this worker's next take()
                    break
                batch.append(self._pop())  # type: ignore[arg-type]
            return batch
