"""A Stage: one op run by N worker threads over a bounded, batching queue.

Each worker builds its own op instance (its own inference session), in the worker's thread or, with
``process``, in a child process of the worker's own (``ProcessOp``). Items past their deadline are
dropped before they cost inference time, and so are items whose submitter was cancelled. A batch whose
op raises is retried ``retry`` times, then every item of it fails; an exception returned in one slot
fails that item only.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from facepipe.config import Config, OpConfig
from facepipe.engine import spans
from facepipe.engine.batcher import Batcher
from facepipe.engine.item import Item, resolve_all
from facepipe.engine.op import OpFactory
from facepipe.engine.process_op import ProcessOp
from facepipe.engine.stats import StageStats
from facepipe.engine.worker import as_worker
from facepipe.errors import DeadlineExceeded, FacepipeError, Overloaded

log = logging.getLogger(__name__)
Forward = Callable[[list[Item], list[Any]], None]  # a finished batch: its items and their results


@dataclass(slots=True)
class StageConfig:
    name: str
    concurrency: int = 1
    batch_size: int = 1
    max_wait_s: float = 0.0
    queue_size: int = 256
    timeout_s: float = 0.0  # 0: only the request's own deadline applies
    retry: int = 0
    process: bool = False  # each worker's op in a process of its own (the seed's is_thread_op: false)


class Stage:
    def __init__(self, config: StageConfig, factory: OpFactory, forward: Forward) -> None:
        self.config = config
        self.name = config.name
        self._factory: OpFactory = partial(ProcessOp, factory, config.name) if config.process else factory
        self._forward = forward
        self._batcher: Batcher[Item] = Batcher(config.batch_size, config.max_wait_s, config.queue_size)
        self._threads: list[threading.Thread] = []
        self._ready = threading.Barrier(config.concurrency + 1)
        self._setup_errors: list[BaseException] = []
        self.stats = StageStats(config.name)

    def start(self) -> None:
        """Start the workers and wait until every one has built its op (raises the first setup error)."""
        for i in range(self.config.concurrency):
            t = threading.Thread(target=self._worker, args=(i,), name=f"{self.name}-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        self._ready.wait()
        if self._setup_errors:
            self.stop()
            raise self._setup_errors[0]

    def stop(self) -> None:
        self._batcher.close(len(self._threads))
        for t in self._threads:
            t.join(timeout=10)
        self._threads.clear()

    def queue_depth(self) -> tuple[int, int]:
        return self._batcher.qsize(), self._batcher.capacity

    def submit(self, item: Item, block: bool) -> None:
        """Enqueue; the first stage refuses at once when full, inner stages wait (backpressure)."""
        item.entered = time.monotonic()
        if self.config.timeout_s > 0:
            item.deadline = min(item.deadline, item.entered + self.config.timeout_s)
        try:
            if block:
                self._batcher.put(item, timeout=max(0.0, item.deadline - item.entered))
            else:
                self._batcher.put_nowait(item)
        except queue.Full:
            raise Overloaded(f"stage {self.name}: queue full ({self._batcher.capacity} items)") from None

    def _worker(self, index: int) -> None:
        try:
            with as_worker(index):
                op = self._factory()
                op.setup()
        except BaseException as exc:
            log.exception("stage %s: worker setup failed", self.name)
            self._setup_errors.append(exc)
            self._ready.wait()
            return
        self._ready.wait()
        while (batch := self._batcher.take()) is not None:
            self._run(op, batch)
        close = getattr(op, "close", None)
        if close is not None:
            close()

    def _run(self, op: Any, batch: list[Item]) -> None:
        now = time.monotonic()
        live: list[Item] = []
        late: list[Item] = []
        for item in batch:
            if item.future.cancelled():  # the client went away (HTTP disconnect, gRPC cancel)
                self.stats.cancelled += 1
                continue
            (live if now <= item.deadline else late).append(item)
        if late:
            why = f"request timed out waiting for stage {self.name}"
            resolve_all([(item, DeadlineExceeded(why)) for item in late])
            self.stats.dropped += len(late)
        if not live:
            return
        started = time.monotonic()
        results = self._call(op, live)
        finished = time.monotonic()
        self.stats.record_batch(
            len(live), (finished - started) * 1e3, [(started - i.entered) * 1e3 for i in live]
        )
        for item in live:
            item.profile.append((self.name, (started - item.entered) * 1e3, (finished - started) * 1e3))
        traced = self._traced(live, results, started, finished) if spans.active is not None else None
        self._forward(live, results)
        self.stats.out_ms += (time.monotonic() - finished) * 1e3
        if traced is not None and spans.active is not None:  # recorded once the items have moved on
            spans.active.batch(traced)

    def _traced(
        self, live: list[Item], results: list[Any], started: float, finished: float
    ) -> spans.Batch | None:
        """The batch as the tracing seam sees it, taken before the items move on (the next stage
        rewrites their ``entered``); None when none of its requests is traced."""
        steps = [
            spans.Step(i.trace, started - i.entered, r if isinstance(r, BaseException) else None)
            for i, r in zip(live, results, strict=True)
            if i.trace is not None
        ]
        if not steps:
            return None
        return spans.Batch(self.name, len(live), started, finished, self.config.process, steps)

    def _call(self, op: Any, live: list[Item]) -> list[Any]:
        payloads = [i.payload for i in live]
        error: BaseException | None = None
        for attempt in range(self.config.retry + 1):
            try:
                results = op(payloads)
            except FacepipeError as exc:  # a deliberate error: retrying will not change it
                error = exc
                break
            except Exception as exc:
                error = exc
                log.warning(
                    "stage %s: batch of %d failed (attempt %d): %s", self.name, len(live), attempt + 1, exc
                )
                continue
            if not isinstance(results, list) or len(results) != len(payloads):
                got = len(results) if isinstance(results, list) else type(results).__name__
                error = RuntimeError(f"op {self.name} returned {got} results for {len(payloads)} items")
                break
            return results
        self.stats.batch_errors += 1
        return [error] * len(live)


def stage_config(config: Config, name: str, op: OpConfig | None = None) -> StageConfig:
    """The engine's StageConfig for op ``name``, from the seed's keys (ms in the file, s in the engine)."""
    op = op or config.op_config(name)
    return StageConfig(
        name=name,
        concurrency=op.concurrency,
        batch_size=op.batch_size,
        max_wait_s=op.auto_batching_timeout / 1000.0,
        queue_size=config.dag.channel_size,
        timeout_s=op.timeout / 1000.0 if op.timeout > 0 else 0.0,
        retry=config.dag.retry if op.retry is None else op.retry,
        process=not (config.dag.is_thread_op if op.is_thread_op is None else op.is_thread_op),
    )
