"""Ops in child processes (the seed's ``is_thread_op: false``): same results as in a thread, per-item
and whole-batch errors kept apart, setup errors raised at start, a dead child replaced."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from facepipe.engine.op import FunctionOp
from facepipe.engine.pipeline import Pipeline
from facepipe.engine.process_op import ProcessOp
from facepipe.engine.stage import StageConfig
from facepipe.errors import InvalidInput


def _square_or_fail(batch: list[Any]) -> list[Any]:
    """x*x with the pid of the process that ran it; 'bad' fails its own item; 'boom' the batch;
    'die' ends the process."""
    if "boom" in batch:
        raise ValueError("the whole batch failed")
    if "die" in batch:
        os._exit(3)
    return [InvalidInput(f"bad item {x!r}") if x == "bad" else (x * x, os.getpid()) for x in batch]


def square_op() -> FunctionOp:
    return FunctionOp(_square_or_fail)


class _BrokenSetup:
    def setup(self) -> None:
        raise RuntimeError("no model here")

    def __call__(self, batch: list[Any]) -> list[Any]:
        return batch


def test_a_child_process_runs_the_op() -> None:
    op = ProcessOp(square_op, "sq")
    op.setup()
    try:
        out = op([2, 3, "bad"])
        assert [o[0] for o in out[:2]] == [4, 9] and out[0][1] != os.getpid()
        assert isinstance(out[2], InvalidInput) and "bad item" in str(out[2])
        with pytest.raises(ValueError, match="whole batch"):
            op([1, "boom"])
        assert op([5])[0][0] == 25  # the child survives a failed batch
    finally:
        op.close()


def test_a_dead_child_fails_its_batch_and_is_replaced() -> None:
    op = ProcessOp(square_op, "sq")
    op.setup()
    try:
        first = op([1])[0][1]
        with pytest.raises(RuntimeError, match="process died"):
            op(["die"])
        again = op([4])[0]
        assert again[0] == 16 and again[1] != first
    finally:
        op.close()


def test_setup_errors_reach_the_parent() -> None:
    op = ProcessOp(_BrokenSetup, "broken")
    with pytest.raises(RuntimeError, match="no model here"):
        op.setup()


def test_a_pipeline_stage_with_process_workers() -> None:
    config = StageConfig("sq", concurrency=2, batch_size=4, max_wait_s=0.005, process=True)
    pipeline = Pipeline("p", [(config, square_op)])
    pipeline.start()
    try:

        async def go() -> list[Any]:
            return list(await asyncio.gather(*(pipeline.submit(i) for i in range(40))))

        out = asyncio.run(go())
    finally:
        pipeline.stop()
    assert [r.value[0] for r in out] == [i * i for i in range(40)]
    assert os.getpid() not in {r.value[1] for r in out}
