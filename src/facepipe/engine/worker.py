"""Which worker of its stage the calling thread is: 0..concurrency-1, set by the stage around an op's
construction and ``setup`` (and carried into a process op's child). An op or a runtime uses it to give
each worker a resource of its own, e.g. one GPU of ``devices: "0,1"`` per worker in turn."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_local = threading.local()


def worker_index() -> int:
    """The calling worker's index in its stage; 0 outside a stage's worker."""
    index: int = getattr(_local, "index", 0)
    return index


@contextmanager
def as_worker(index: int) -> Iterator[None]:
    """Run the block as worker ``index`` of its stage."""
    previous = worker_index()
    _local.index = index
    try:
        yield
    finally:
        _local.index = previous
