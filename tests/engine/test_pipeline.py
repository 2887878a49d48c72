"""Engine behaviour with fake ops: batching, errors, backpressure, deadlines, retry, concurrency."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from facepipe.engine.op import FunctionOp
from facepipe.engine.pipeline import Pipeline
from facepipe.engine.stage import StageConfig
from facepipe.errors import DeadlineExceeded, InvalidInput, Overloaded


class Recorder:
    """A fake op that records batch sizes and the threads that ran it."""

    def __init__(self, fn: Any = None, delay: float = 0.0) -> None:
        self.sizes: list[int] = []
        self.threads: set[str] = set()
        self.setups = 0
        self.fn = fn or (lambda x: x * 2)
        self.delay = delay

    def factory(self) -> FunctionOp:
        self.setups += 1
        return FunctionOp(self)

    def __call__(self, batch: list[Any]) -> list[Any]:
        self.sizes.append(len(batch))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        return [self.fn(x) for x in batch]


def run(pipeline: Pipeline, coro_fn: Any) -> Any:
    pipeline.start()
    try:
        return asyncio.run(coro_fn())
    finally:
        pipeline.stop()


def test_results_in_order_through_two_stages() -> None:
    a, b = Recorder(), Recorder(lambda x: x + 1)
    p = Pipeline("p", [(StageConfig("a"), a.factory), (StageConfig("b"), b.factory)])

    async def go() -> list[int]:
        return [r.value for r in await asyncio.gather(*(p.submit(i) for i in range(20)))]

    assert run(p, go) == [2 * i + 1 for i in range(20)]


def test_dynamic_batching_fills_batches() -> None:
    rec = Recorder(delay=0.02)
    p = Pipeline("p", [(StageConfig("a", batch_size=8, max_wait_s=0.01), rec.factory)])

    async def go() -> None:
        await asyncio.gather(*(p.submit(i) for i in range(40)))

    run(p, go)
    assert sum(rec.sizes) == 40 and max(rec.sizes) == 8 and len(rec.sizes) <= 8


def test_per_item_error_fails_only_that_item() -> None:
    def fn(x: int) -> Any:
        return InvalidInput(f"bad {x}") if x == 3 else x

    p = Pipeline("p", [(StageConfig("a", batch_size=8, max_wait_s=0.02), Recorder(fn).factory)])

    async def go() -> list[Any]:
        return await asyncio.gather(*(p.submit(i) for i in range(6)), return_exceptions=True)

    out = run(p, go)
    assert isinstance(out[3], InvalidInput) and "bad 3" in str(out[3])
    assert [r.value for i, r in enumerate(out) if i != 3] == [0, 1, 2, 4, 5]


def test_raising_fails_the_whole_batch_after_retries() -> None:
    calls = []

    def boom(batch: list[int]) -> list[int]:
        calls.append(len(batch))
        raise RuntimeError("device lost")

    p = Pipeline("p", [(StageConfig("a", retry=2), lambda: FunctionOp(boom))])

    async def go() -> Any:
        return await asyncio.gather(p.submit(1), return_exceptions=True)

    (err,) = run(p, go)
    assert isinstance(err, RuntimeError) and len(calls) == 3


def test_retry_recovers_from_a_transient_failure() -> None:
    state = {"n": 0}

    def flaky(batch: list[int]) -> list[int]:
        state["n"] += 1
        if state["n"] == 1:
            raise RuntimeError("transient")
        return batch

    p = Pipeline("p", [(StageConfig("a", retry=1), lambda: FunctionOp(flaky))])

    async def go() -> Any:
        return (await p.submit(5)).value

    assert run(p, go) == 5


def test_length_mismatch_is_caught() -> None:
    p = Pipeline("p", [(StageConfig("a"), lambda: FunctionOp(lambda b: b + b))])

    async def go() -> Any:
        return await asyncio.gather(p.submit(1), return_exceptions=True)

    (err,) = run(p, go)
    assert isinstance(err, RuntimeError) and "returned 2 results for 1 items" in str(err)


def test_full_queue_answers_overloaded_at_once() -> None:
    rec = Recorder(delay=0.2)
    p = Pipeline("p", [(StageConfig("a", queue_size=2), rec.factory)])

    async def go() -> list[Any]:
        first = asyncio.ensure_future(p.submit(0))
        await asyncio.sleep(0.05)  # the worker is now busy with item 0
        t0 = time.monotonic()
        rest = await asyncio.gather(*(p.submit(i) for i in range(1, 6)), return_exceptions=True)
        assert time.monotonic() - t0 < 2
        return [await first, *rest]

    out = run(p, go)
    overloaded = [r for r in out if isinstance(r, Overloaded)]
    assert len(overloaded) == 3 and "queue full" in str(overloaded[0])


def test_expired_items_are_dropped_before_inference() -> None:
    rec = Recorder(delay=0.15)
    p = Pipeline("p", [(StageConfig("a"), rec.factory)])

    async def go() -> list[Any]:
        return await asyncio.gather(p.submit(1), p.submit(2, timeout_s=0.05), return_exceptions=True)

    out = run(p, go)
    assert out[0].value == 2 and isinstance(out[1], DeadlineExceeded)
    assert rec.sizes == [1]  # item 2 never reached the op


def test_workers_own_their_ops_and_run_concurrently() -> None:
    rec = Recorder(delay=0.1)
    p = Pipeline("p", [(StageConfig("a", concurrency=4), rec.factory)])

    async def go() -> float:
        t0 = time.monotonic()
        await asyncio.gather(*(p.submit(i) for i in range(8)))
        return time.monotonic() - t0

    elapsed = run(p, go)
    assert rec.setups == 4 and len(rec.threads) == 4
    assert elapsed < 0.5  # 8 x 0.1 s spread over 4 workers


def test_setup_failure_surfaces_at_start() -> None:
    class Broken(FunctionOp):
        def setup(self) -> None:
            raise OSError("no model file")

    p = Pipeline("p", [(StageConfig("a", concurrency=2), lambda: Broken(lambda b: b))])
    with pytest.raises(OSError, match="no model file"):
        p.start()


def test_profile_records_every_stage() -> None:
    p = Pipeline("p", [(StageConfig("a"), Recorder().factory), (StageConfig("b"), Recorder().factory)])

    async def go() -> Any:
        return await p.submit(1)

    res = run(p, go)
    assert [s for s, _, _ in res.profile] == ["a", "b"]
