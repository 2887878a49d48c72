"""Cancellation: a submitter that goes away (HTTP disconnect, gRPC cancel) takes its queued work with it."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from facepipe.engine.op import FunctionOp
from facepipe.engine.pipeline import Pipeline
from facepipe.engine.stage import StageConfig


class Slow:
    """An op that takes 50 ms per batch and records every payload it ran."""

    def __init__(self) -> None:
        self.ran: list[Any] = []
        self.lock = threading.Lock()

    def factory(self) -> FunctionOp:
        return FunctionOp(self)

    def __call__(self, batch: list[Any]) -> list[Any]:
        time.sleep(0.05)
        with self.lock:
            self.ran.extend(batch)
        return batch


def test_cancelled_queued_items_are_never_run_and_are_counted() -> None:
    op = Slow()
    p = Pipeline("p", [(StageConfig("a", batch_size=1, queue_size=64), op.factory)])
    p.start()

    async def go() -> None:
        tasks = [asyncio.ensure_future(p.submit(i)) for i in range(40)]
        await asyncio.sleep(0.12)  # two or three items run, the rest wait in the queue
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert p.in_flight == 0
        await asyncio.sleep(0.3)  # long enough for the worker to drain the queue

    try:
        asyncio.run(go())
    finally:
        p.stop()
    assert len(op.ran) <= 5, op.ran  # 40 queued, 40 x 50 ms had they all run
    assert p.stages[0].stats.cancelled >= 35


def test_a_cancelled_item_goes_no_further_than_the_stage_it_was_in() -> None:
    first, second = Slow(), Slow()
    p = Pipeline("p", [(StageConfig("a"), first.factory), (StageConfig("b"), second.factory)])
    p.start()

    async def go() -> None:
        task = asyncio.ensure_future(p.submit("x"))
        await asyncio.sleep(0.02)  # inside stage a's 50 ms batch
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0.15)

    try:
        asyncio.run(go())
    finally:
        p.stop()
    assert first.ran == ["x"] and second.ran == []
