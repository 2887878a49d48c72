"""The DAG builder and executor: named inputs, fan-out, fan-in, concurrent branches, per-request
failure, per-node config, declared models; and the seed-style ``SeedOp``."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pytest

from facepipe.config import parse_config
from facepipe.engine import REQUEST, Dag, FunctionOp, Pipeline, SeedOp, per_item
from facepipe.errors import ConfigError, InvalidInput


def run(pipeline: Pipeline, coro_fn: Any) -> Any:
    pipeline.start()
    try:
        return asyncio.run(coro_fn())
    finally:
        pipeline.stop()


def sleeper(delay: float, fn: Any, log: list[tuple[str, float, float]] | None = None, name: str = "") -> Any:
    def make() -> FunctionOp:
        def call(batch: list[Any]) -> list[Any]:
            start = time.monotonic()
            time.sleep(delay)
            if log is not None:
                log.append((name, start, time.monotonic()))
            return [fn(x) for x in batch]

        return FunctionOp(call)

    return make


def diamond(delay: float = 0.0, log: list[Any] | None = None) -> Dag:
    """x -> a: x+1 -> (b: a*10 || c: a*100) -> join: (b, c)."""
    return (
        Dag("diamond")
        .add("a", sleeper(0, lambda x: x + 1))
        .add("b", sleeper(delay, lambda a: a * 10, log, "b"), inputs=["a"])
        .add("c", sleeper(delay, lambda a: a * 100, log, "c"), inputs=["a"])
        .add("join", lambda: per_item(lambda bc: {"b": bc[0], "c": bc[1]}), inputs=["b", "c"])
    )


def test_fan_out_and_fan_in_keep_each_request_its_own_values() -> None:
    p = diamond().compile()

    async def go() -> list[Any]:
        return [r.value for r in await asyncio.gather(*(p.submit(i) for i in range(50)))]

    assert run(p, go) == [{"b": (i + 1) * 10, "c": (i + 1) * 100} for i in range(50)]


def test_fan_in_passes_inputs_in_the_order_the_node_names_them() -> None:
    dag = (
        Dag("order")
        .add("a", lambda: per_item(lambda x: f"a{x}"))
        .add("b", lambda: per_item(lambda x: f"b{x}"), inputs=REQUEST)
        .add("j", lambda: per_item("+".join), inputs=["b", "a"])
    )
    p = dag.compile()

    async def go() -> Any:
        return (await p.submit(7)).value

    assert run(p, go) == "b7+a7"


def test_branches_run_concurrently() -> None:
    log: list[tuple[str, float, float]] = []
    p = diamond(delay=0.3, log=log).compile()

    async def go() -> float:
        start = time.monotonic()
        await p.submit(1)
        return time.monotonic() - start

    took = run(p, go)
    (_, b0, b1), (_, c0, c1) = sorted(log)
    assert max(b0, c0) < min(b1, c1)  # the two branches overlapped in time
    assert took < 0.5  # not 0.6 s: the branches' sleeps were not added up


def test_a_failed_item_fails_only_its_request_with_the_error() -> None:
    def c(a: int) -> int:
        if a == 4:
            raise InvalidInput(f"branch c cannot take {a}")
        return a

    dag = (
        Dag("fail")
        .add("a", lambda: per_item(lambda x: x + 1))
        .add("b", lambda: per_item(lambda a: a), inputs="a")
        .add("c", lambda: per_item(c), inputs="a")
        .add("join", lambda: per_item(sum), inputs=["b", "c"])
    )
    p = dag.compile(parse_config({"op": {"c": {"batch_size": 8, "auto_batching_timeout": 20}}}))

    async def go() -> list[Any]:
        return await asyncio.gather(*(p.submit(i) for i in range(6)), return_exceptions=True)

    out = run(p, go)
    assert isinstance(out[3], InvalidInput) and "branch c cannot take 4" in str(out[3])
    assert [r.value for i, r in enumerate(out) if i != 3] == [2, 4, 6, 10, 12]
    assert p.requests.snapshot().error_ids == [4]


def test_node_config_comes_from_config_by_node_name() -> None:
    keys = {"concurrency": 3, "batch_size": 8, "auto_batching_timeout": 5, "timeout": 1500, "retry": 2}
    p = diamond().compile(parse_config({"op": {"b": keys}}))
    b = next(s for s in p.stages if s.name == "b")
    assert (b.config.concurrency, b.config.batch_size, b.config.max_wait_s) == (3, 8, 0.005)
    assert (b.config.timeout_s, b.config.retry) == (1.5, 2)
    assert p.input_names(3) == ["b", "c"] and p.input_names(0) == ["@DAGExecutor"]


def test_mistakes_are_named() -> None:
    with pytest.raises(ConfigError, match="reads \\['nope'\\]"):
        Dag("d").add("a", lambda: per_item(abs), inputs="nope")
    with pytest.raises(ConfigError, match="taken"):
        Dag("d").add("a", lambda: per_item(abs)).add("a", lambda: per_item(abs))
    dangling = Dag("d").add("a", lambda: per_item(abs)).add("b", lambda: per_item(abs), inputs=REQUEST)
    with pytest.raises(ConfigError, match="\\['a'\\] do not lead to the output"):
        dangling.compile()
    with pytest.raises(ConfigError, match="names models"):
        Dag("d").add("a", SeedOp, model="m").compile()


class Doubler:
    """A tiny model: ``y = 2 x``; counts the sessions opened and the threads that opened them."""

    name, version = "doubler", "3"
    manifest: dict[str, Any] = {}

    def __init__(self) -> None:
        self.opened: list[str] = []

    def open(self) -> Any:
        self.opened.append(threading.current_thread().name)
        return self

    input_names, output_names = ["x"], ["y"]

    def run(self, inputs: dict[str, Any]) -> list[Any]:
        return [inputs["x"] * 2]


class Models:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []
        self.doubler = Doubler()

    def model(self, bundle: str, node: str) -> Any:
        self.asked.append((bundle, node))
        return self.doubler


class Scale(SeedOp):
    sizes: list[int] = []

    def preprocess(self, item: Any) -> Any:
        if item < 0:
            raise InvalidInput(f"negative input {item}")
        return np.full(2, float(item), np.float32)

    def process(self, batch: list[Any]) -> list[Any]:
        Scale.sizes.append(len(batch))
        return SeedOp.process(self, batch)

    def postprocess(self, item: Any, out: Any) -> Any:
        return float(out["y"].sum()) + item


def test_seed_op_hooks_batch_process_and_open_declared_models_per_worker() -> None:
    models = Models()
    dag = Dag("seed").add("scale", Scale, model="doubler")
    cfg = parse_config({"op": {"scale": {"concurrency": 2, "batch_size": 16, "auto_batching_timeout": 50}}})
    p = dag.compile(cfg, models)

    async def go() -> list[Any]:
        xs = [1, 2, -1, *range(3, 20)]
        return await asyncio.gather(*(p.submit(i) for i in xs), return_exceptions=True)

    out = run(p, go)
    assert [r.value for i, r in enumerate(out) if i != 2] == [5.0 * x for x in [1, 2, *range(3, 20)]]
    assert isinstance(out[2], InvalidInput)
    assert models.asked == [("doubler", "scale")]
    assert sorted(models.doubler.opened) == ["scale-0", "scale-1"]  # each worker, in its own thread
    assert max(Scale.sizes) > 1  # process saw batches, not single items
