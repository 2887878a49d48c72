from __future__ import annotations

from typing import Any

import pytest

from facepipe.engine.op import Chain, FunctionOp, per_item


def test_chain_runs_steps_in_order_and_skips_failed_items() -> None:
    seen: list[list[Any]] = []

    def parse(x: str) -> int:
        return int(x)

    def double(batch: list[Any]) -> list[Any]:
        seen.append(batch)
        return [x * 2 for x in batch]

    chain = Chain(per_item(parse), FunctionOp(double))
    chain.setup()
    out = chain(["1", "x", "3"])
    assert out[0] == 2 and out[2] == 6
    assert isinstance(out[1], ValueError)  # the bad item fails alone ...
    assert seen == [[1, 3]]  # ... and never reaches the next step


def test_chain_stops_when_every_item_failed() -> None:
    calls: list[Any] = []
    chain = Chain(per_item(int), FunctionOp(lambda b: calls.append(b) or b))
    out = chain(["a", "b"])
    assert all(isinstance(x, ValueError) for x in out) and calls == []


def test_chain_catches_a_step_that_loses_items() -> None:
    chain = Chain(FunctionOp(lambda b: b[:1]))
    with pytest.raises(RuntimeError, match="1 results for 2"):
        chain([1, 2])
