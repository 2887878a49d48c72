"""The Op protocol: a batch function. A list comes in, a list of the same length goes out; an
exception in a slot fails that item only, raising fails the whole batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class Op(Protocol):
    """One pipeline step. Each worker thread builds its own instance (its own inference sessions)."""

    def setup(self) -> None:
        """Build what the op needs (sessions, buffers); called once in the worker's own thread."""

    def __call__(self, batch: list[Any]) -> list[Any]:
        """Process a batch; return one result (or an Exception instance) per item, in order."""


OpFactory = Callable[[], Op]


class FunctionOp:
    """An Op from a plain batch function (for ops without state)."""

    def __init__(self, fn: Callable[[list[Any]], list[Any]]) -> None:
        self.fn = fn

    def setup(self) -> None:
        return None

    def __call__(self, batch: list[Any]) -> list[Any]:
        return self.fn(batch)


def per_item(fn: Callable[[Any], Any]) -> FunctionOp:
    """An Op applying ``fn`` to each item on its own: an item whose ``fn`` raises fails alone."""

    def run(batch: list[Any]) -> list[Any]:
        out: list[Any] = []
        for x in batch:
            try:
                out.append(fn(x))
            except Exception as exc:
                out.append(exc)
        return out

    return FunctionOp(run)


class Chain:
    """Several ops run one after another by the same worker (the seed's preprocess -> process inside
    one op): no queue hop between them. Items a step fails skip the steps after it."""

    def __init__(self, *ops: Op) -> None:
        self.ops = ops

    def setup(self) -> None:
        for op in self.ops:
            op.setup()

    def __call__(self, batch: list[Any]) -> list[Any]:
        out = list(batch)
        for op in self.ops:
            live = [i for i, x in enumerate(out) if not isinstance(x, BaseException)]
            if not live:
                break
            results = op([out[i] for i in live])
            if len(results) != len(live):
                raise RuntimeError(f"op {type(op).__name__} returned {len(results)} results for {len(live)}")
            for i, r in zip(live, results, strict=True):
                out[i] = r
        return out
