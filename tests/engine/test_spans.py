"""The engine's tracing seam with a binding of the test's own: each traced request gets a step in
every op call that served it (its own context, wait and error, the batch's size and times); a request
the binding does not trace, or any request while no binding is installed, costs the seam nothing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

import pytest

from facepipe.engine import spans
from facepipe.engine.op import FunctionOp
from facepipe.engine.pipeline import REQUEST, Pipeline
from facepipe.engine.stage import StageConfig
from facepipe.errors import InvalidInput

CURRENT: ContextVar[Any] = ContextVar("current", default=None)  # what the binding captures


class Binding:
    """Records what the engine hands the seam."""

    def __init__(self) -> None:
        self.batches: list[spans.Batch] = []
        self.lock = threading.Lock()

    def request(self, protocol: str, carrier: Mapping[str, str]) -> spans.RequestSpan:
        raise NotImplementedError  # the engine never opens request spans: the edges do

    def capture(self) -> Any:
        return CURRENT.get()

    def batch(self, batch: spans.Batch) -> None:
        with self.lock:
            self.batches.append(batch)


@pytest.fixture
def binding() -> Iterator[Binding]:
    b = Binding()
    spans.install(b)
    yield b
    spans.install(None)


def _double_or_fail(batch: list[Any]) -> list[Any]:
    return [InvalidInput("odd one") if x == "bad" else x * 2 for x in batch]


def dag() -> Pipeline:
    """a -> (b, c) -> d; a batches up to 4 items, waiting 100 ms for them."""
    op = lambda: FunctionOp(_double_or_fail)  # noqa: E731
    join = lambda: FunctionOp(lambda batch: [sum(x) for x in batch])  # noqa: E731
    steps = [
        (StageConfig("a", batch_size=4, max_wait_s=0.1), op),
        (StageConfig("b"), op),
        (StageConfig("c"), op),
        (StageConfig("d"), join),
    ]
    return Pipeline("p", steps, inputs=[[REQUEST], [0], [0], [1, 2]])


async def traced(p: Pipeline, x: Any, ctx: Any) -> Any:
    CURRENT.set(ctx)  # this request's task only
    return (await p.submit(x)).value


def test_each_request_gets_a_step_per_op_with_its_own_context(binding: Binding) -> None:
    p = dag()
    p.start()
    try:

        async def go() -> list[Any]:
            return await asyncio.gather(*(traced(p, i, f"ctx{i}") for i in range(1, 4)))

        assert asyncio.run(go()) == [8, 16, 24]
    finally:
        p.stop()
    by_op: dict[str, list[spans.Step]] = {}
    for b in binding.batches:
        by_op.setdefault(b.op, []).extend(b.steps)
        assert b.end >= b.start and b.size >= len(b.steps) and not b.process
    for op in "abcd":
        assert sorted(s.context for s in by_op[op]) == ["ctx1", "ctx2", "ctx3"], op
    first = [b for b in binding.batches if b.op == "a"]
    assert first[0].size == 3 and len(first[0].steps) == 3  # one call served all three requests
    assert all(s.queued_s >= 0 and s.error is None for s in by_op["a"])


def test_an_item_error_is_its_own_step_and_untraced_items_have_none(binding: Binding) -> None:
    p = dag()
    p.start()
    try:

        async def go() -> list[Any]:
            calls = [traced(p, "bad", "ctx-bad"), traced(p, 5, None), traced(p, 6, "ctx6")]
            return await asyncio.gather(*calls, return_exceptions=True)

        out = asyncio.run(go())
    finally:
        p.stop()
    assert isinstance(out[0], InvalidInput) and out[1:] == [40, 48]
    a = [b for b in binding.batches if b.op == "a"]
    assert a[0].size == 3 and [s.context for s in a[0].steps] == ["ctx-bad", "ctx6"]
    assert isinstance(a[0].steps[0].error, InvalidInput) and a[0].steps[1].error is None
    assert all(s.context != "ctx-bad" for b in binding.batches if b.op != "a" for s in b.steps)


def test_requests_the_binding_does_not_trace_make_no_calls(binding: Binding) -> None:
    p = dag()
    p.start()
    try:

        async def go() -> list[Any]:
            return await asyncio.gather(*(traced(p, i, None) for i in range(3)))

        assert asyncio.run(go()) == [0, 8, 16]
    finally:
        p.stop()
    assert binding.batches == []
