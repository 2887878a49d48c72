"""The seed's tracer log: every ``interval_s``, append per-op timings, DAG QPS and latency percentiles,
and channel sizes to ``<log_dir>/pipeline.tracer`` (plus a batch-size histogram per op), rotated past
``max_bytes``."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from facepipe.engine.pipeline import Pipeline

log = logging.getLogger(__name__)


def _labels(pipelines: list[Pipeline]) -> dict[int, str]:
    """Pipeline names, with ``@version`` where several versions of one service are loaded (A/B)."""
    counts = Counter(p.name for p in pipelines)
    return {id(p): p.name if counts[p.name] == 1 else f"{p.name}@{p.variant}" for p in pipelines}


def render(pipelines: list[Pipeline], workers: int = 1) -> list[str]:
    """One tracer record, as the lines the seed writes (without timestamps)."""
    lines = ["==================== TRACER ======================"]
    label = _labels(pipelines)
    for p in pipelines:
        suffix = "" if label[id(p)] == p.name else f"@{p.variant}"
        for s in p.stages:
            snap = s.stats.snapshot(s.config.concurrency)
            hist = ", ".join(f"{k}:{v}" for k, v in snap.batch_sizes.items())
            lines += [
                f"Op({s.name}{suffix}):",
                f"\tin[{snap.in_ms:.3f} ms]",
                "\tprep[0.000 ms]",
                f"\tmidp[{snap.midp_ms:.3f} ms]",
                "\tpostp[0.000 ms]",
                f"\tout[{snap.out_ms:.3f} ms]",
                f"\tidle[{snap.idle:.5f}]",
                f"\tbatch_size[{hist}]",
            ]
    for p in pipelines:
        req = p.requests.snapshot()
        lines += [
            f"DAGExecutor({label[id(p)]}):",
            f"\tQuery count[{req.count}]",
            f"\tQPS[{req.qps:.2f} q/s]",
            f"\tSucc[{req.success:.5f}]",
            f"\tError req[{', '.join(str(i) for i in req.error_ids)}]",
            "\tLatency:",
        ]
        lines += [f"\t\t{k}[{v:.3f} ms]" for k, v in req.latency_ms.items()]
    lines.append(f"Channel (server worker num[{workers}]):")
    for p in pipelines:
        for i, s in enumerate(p.stages):
            cur, cap = s.queue_depth()
            lines.append(f"\tchl{i}(In: {p.input_names(i)}, Out: ['{s.name}']) size[{cur}/{cap}]")
    return lines


def rotate(path: Path, backups: int) -> None:
    """``path`` -> ``path.1`` -> ... -> ``path.<backups>`` (the oldest dropped); 0 backups: removed."""
    if backups <= 0:
        path.unlink(missing_ok=True)
        return
    for i in range(backups - 1, 0, -1):
        older = path.with_name(f"{path.name}.{i}")
        if older.exists():
            older.replace(path.with_name(f"{path.name}.{i + 1}"))
    path.replace(path.with_name(f"{path.name}.1"))


class Tracer:
    """Appends a record every ``interval_s``; past ``max_bytes`` the file is rotated (``backups``
    older files kept), so the log never takes more than about ``(backups + 1) * max_bytes``: at the
    default 10 s a server of seven pipelines wrote ~175 MB a day, idle or not."""

    def __init__(
        self,
        path: Path,
        interval_s: float,
        pipelines: Callable[[], list[Pipeline]],
        max_bytes: int = 10 * 1024 * 1024,
        backups: int = 3,
    ) -> None:
        self.path = path
        self.interval_s = interval_s
        self.max_bytes, self.backups = max_bytes, backups
        self._pipelines = pipelines
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tracer", daemon=True)

    def start(self) -> None:
        if self.interval_s > 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def write_once(self) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        record = "".join(f"{stamp} {line}\n" for line in render(self._pipelines()))
        size = self.path.stat().st_size if self.path.exists() else 0
        if size and size + len(record) > self.max_bytes:
            rotate(self.path, self.backups)
        with self.path.open("a") as f:
            f.write(record)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.write_once()
            except OSError as exc:
                log.warning("tracer: cannot write %s: %s", self.path, exc)
