"""A Pipeline: stages wired as a DAG (a line being the simplest one); ``submit`` returns an awaitable
result.

Each stage reads the outputs of the stages it names as inputs (or the request itself). A stage runs
an item once every one of its inputs for that item is ready (fan-in); stages fed by the same output
get it at once and run concurrently, each on its own workers (fan-out). The last stage's result is
the request's result. Items move between stages inside worker threads (no event-loop hop per
stage); only the final result (or the first error) goes back to the submitter's event loop, and an
item that fails fails its own request only.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from facepipe.engine import spans
from facepipe.engine.item import Item, resolve_all
from facepipe.engine.op import OpFactory
from facepipe.engine.stage import Stage, StageConfig
from facepipe.engine.stats import RequestStats
from facepipe.errors import FacepipeError, NotReady

REQUEST = -1  # the request itself, as a stage's input


@dataclass(slots=True)
class Result:
    value: Any
    profile: list[tuple[str, float, float]]
    tags: dict[str, str]


@dataclass(slots=True)
class Flow:
    """One request's progress through a DAG: outputs kept until every reader has them."""

    waiting: list[int]  # per stage: inputs not yet ready
    values: dict[int, Any] = field(default_factory=dict)
    failed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class Pipeline:
    def __init__(
        self,
        name: str,
        steps: list[tuple[StageConfig, OpFactory]],
        timeout_s: float = 30.0,
        inputs: Sequence[Sequence[int]] | None = None,
    ) -> None:
        """``inputs[i]``: the stages whose outputs stage ``i`` reads (``REQUEST``: the request);
        default: a line, each stage reading the one before it."""
        if not steps:
            raise ValueError(f"pipeline {name}: needs at least one stage")
        self.name = name
        self.timeout_s = timeout_s
        self.stages = [Stage(cfg, factory, self._forward) for cfg, factory in steps]
        line: list[tuple[int, ...]] = [(i - 1,) for i in range(len(steps))]
        wiring = line if inputs is None else [tuple(x) for x in inputs]
        self.inputs = _checked(name, wiring, len(steps))
        self.readers: list[list[int]] = [[] for _ in steps]
        for i, ins in enumerate(self.inputs):
            for j in ins:
                if j != REQUEST:
                    self.readers[j].append(i)
        self.roots = [i for i, ins in enumerate(self.inputs) if ins == (REQUEST,)]
        self._linear = all(ins == (i - 1,) for i, ins in enumerate(self.inputs))  # one item moves on
        self.requests = RequestStats()
        self._ids = itertools.count(1)
        self._running = False
        self.in_flight = 0
        self.variant = ""  # the model version it serves, where versions of one service coexist

    def start(self) -> None:
        started: list[Stage] = []
        try:
            for stage in self.stages:
                stage.start()
                started.append(stage)
        except BaseException:
            for stage in started:
                stage.stop()
            raise
        self._running = True

    def stop(self) -> None:
        self._running = False
        for stage in self.stages:
            stage.stop()

    @property
    def running(self) -> bool:
        return self._running

    def input_names(self, index: int) -> list[str]:
        """The names of what stage ``index`` reads (``@DAGExecutor``: the request, as the seed says)."""
        return ["@DAGExecutor" if j == REQUEST else self.stages[j].name for j in self.inputs[index]]

    async def submit(self, payload: Any, timeout_s: float | None = None, request_id: int = 0) -> Result:
        """Run ``payload`` through the stages; raises the item's error (Overloaded at once if full)."""
        if not self._running:
            raise NotReady(f"pipeline {self.name} is not running")
        loop = asyncio.get_running_loop()
        timeout = self.timeout_s if timeout_s is None else timeout_s
        item = Item(payload, loop.create_future(), loop, time.monotonic() + timeout)
        item.request_id = request_id or next(self._ids)
        if spans.active is not None:
            item.trace = spans.active.capture()
        if not self._linear:
            item.flow = Flow([len(ins) for ins in self.inputs])
        self.in_flight += 1
        ok = False
        try:
            self._submit_roots(item, payload)
            value = await item.future
            ok = True
            return Result(value, item.profile, item.tags)
        finally:
            self.in_flight -= 1
            self.requests.record((time.monotonic() - item.created) * 1e3, item.request_id, ok)

    def _submit_roots(self, item: Item, payload: Any) -> None:
        for n, root in enumerate(self.roots):
            it = item if n == 0 else _branch(item, payload)
            it.stage_index = root
            try:
                self.stages[root].submit(it, block=False)
            except FacepipeError:
                if item.flow is not None:
                    item.flow.failed = True
                raise

    def _forward(self, items: list[Item], results: list[Any]) -> None:
        """Move a stage's finished batch on: into the stages that read it, or back to the submitters."""
        done: list[tuple[Item, Any]] = []
        for item, result in zip(items, results, strict=True):
            node = item.stage_index
            if isinstance(result, BaseException) or node == len(self.stages) - 1:
                if item.flow is not None:
                    item.flow.failed = True
                done.append((item, result))
                continue
            if item.future.cancelled():  # nobody waits for it: no further stage runs it
                if item.flow is not None:
                    item.flow.failed = True
                continue
            for nxt, payload in self._ready(item, node, result):
                it = item if nxt is None else nxt
                it.payload = payload
                try:
                    self.stages[it.stage_index].submit(it, block=True)
                except FacepipeError as exc:
                    if it.flow is not None:
                        it.flow.failed = True
                    done.append((it, exc))
        if done:
            resolve_all(done)

    def _ready(self, item: Item, node: int, result: Any) -> list[tuple[Item | None, Any]]:
        """The stages that ``result`` completes the inputs of, each with its item and payload."""
        flow: Flow | None = item.flow
        if flow is None:  # a line: the same item moves on
            item.stage_index = node + 1
            return [(None, result)]
        ready: list[int] = []
        with flow.lock:
            if flow.failed:
                return []
            flow.values[node] = result
            for r in self.readers[node]:
                flow.waiting[r] -= 1
                if flow.waiting[r] == 0:
                    ready.append(r)
            payloads = [self._payload(flow, r) for r in ready]
        out: list[tuple[Item | None, Any]] = []
        for n, (r, payload) in enumerate(zip(ready, payloads, strict=True)):
            it = item if n == 0 else _branch(item, payload)
            it.stage_index = r
            out.append((it, payload))
        return out

    def _payload(self, flow: Flow, index: int) -> Any:
        """One input: its value; several: a tuple in the order the stage named them."""
        vals = tuple(flow.values[j] for j in self.inputs[index])
        return vals[0] if len(vals) == 1 else vals


def _branch(item: Item, payload: Any) -> Item:
    """Another item of the same request (same future, deadline, profile and tags) for a branch."""
    return Item(
        payload,
        item.future,
        item.loop,
        item.deadline,
        request_id=item.request_id,
        created=item.created,
        profile=item.profile,
        tags=item.tags,
        flow=item.flow,
        trace=item.trace,
    )


def _checked(name: str, inputs: list[tuple[int, ...]], n: int) -> list[tuple[int, ...]]:
    """Each stage reads only earlier stages (so the graph has no cycle) and feeds the last one."""
    if len(inputs) != n:
        raise ValueError(f"pipeline {name}: {len(inputs)} input lists for {n} stages")
    used = {n - 1}
    for i in reversed(range(n)):
        ins = inputs[i]
        if not ins or any(j != REQUEST and not 0 <= j < i for j in ins):
            raise ValueError(f"pipeline {name}: stage {i} must read the request or earlier stages, got {ins}")
        if REQUEST in ins and len(ins) > 1:
            raise ValueError(f"pipeline {name}: stage {i} reads the request together with other stages")
        if i not in used:
            raise ValueError(f"pipeline {name}: stage {i} does not lead to the last stage (its output)")
        used.update(ins)
    return inputs
