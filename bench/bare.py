"""The bare model, in-process (no I/O, no decode): what the serving benchmarks compare against."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from facepipe.models.bundle import Bundle
from facepipe.runtime import RuntimeSpec, open_session

Run = Callable[[np.ndarray], np.ndarray]


def runner(bundle: Bundle, threads: int, engine: str = "auto", precision: str = "fp32") -> Run:
    """One session opened as a server worker opens it; ``run(x)`` -> the first output."""
    session = open_session(bundle, RuntimeSpec(threads=threads, engine=engine, precision=precision))
    name = session.input_names[0]
    return lambda x: session.run({name: x})[0]


def rate(runs: list[Run], x: np.ndarray, seconds: float) -> float:
    """Images/s of ``runs`` side by side, each in its own thread, on the batch ``x``."""
    for r in runs:
        r(x)
    counts, stop = [0] * len(runs), time.perf_counter() + seconds

    def loop(i: int) -> None:
        while time.perf_counter() < stop:
            runs[i](x)
            counts[i] += len(x)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(runs))]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def batch1_p50_ms(run: Run, x: np.ndarray, calls: int = 300) -> float:
    """Median latency of one image at a time (the first 20 calls are warm-up)."""
    lat = []
    for i in range(calls):
        t0 = time.perf_counter()
        run(x[i % len(x)][None])
        lat.append((time.perf_counter() - t0) * 1e3)
    return float(np.percentile(lat[20:], 50))
