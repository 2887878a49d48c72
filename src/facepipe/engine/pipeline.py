"""A Pipeline: ordered stages; ``submit`` returns an awaitable result.

Items move between stages inside worker threads (no event-loop hop per stage); only the final result
(or the first error) goes back to the submitter's event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from typing import Any

from facepipe.engine.item import Item, resolve_all
from facepipe.engine.op import OpFactory
from facepipe.engine.stage import Stage, StageConfig
from facepipe.engine.stats import RequestStats
from facepipe.errors import FacepipeError, NotReady


@dataclass(slots=True)
class Result:
    value: Any
    profile: list[tuple[str, float, float]]
    tags: dict[str, str]


class Pipeline:
    def __init__(
        self, name: str, steps: list[tuple[StageConfig, OpFactory]], timeout_s: float = 30.0
    ) -> None:
        if not steps:
            raise ValueError(f"pipeline {name}: needs at least one stage")
        self.name = name
        self.timeout_s = timeout_s
        self.stages = [Stage(cfg, factory, self._forward) for cfg, factory in steps]
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

    async def submit(self, payload: Any, timeout_s: float | None = None, request_id: int = 0) -> Result:
        """Run ``payload`` through every stage; raises the item's error (Overloaded at once if full)."""
        if not self._running:
            raise NotReady(f"pipeline {self.name} is not running")
        loop = asyncio.get_running_loop()
        timeout = self.timeout_s if timeout_s is None else timeout_s
        item = Item(payload, loop.create_future(), loop, time.monotonic() + timeout)
        item.request_id = request_id or next(self._ids)
        self.in_flight += 1
        ok = False
        try:
            self.stages[0].submit(item, block=False)
            value = await item.future
            ok = True
            return Result(value, item.profile, item.tags)
        finally:
            self.in_flight -= 1
            self.requests.record((time.monotonic() - item.created) * 1e3, item.request_id, ok)

    def _forward(self, items: list[Item], results: list[Any]) -> None:
        """Move a stage's finished batch on: into the next stage, or back to the submitters."""
        done: list[tuple[Item, Any]] = []
        for item, result in zip(items, results, strict=True):
            item.stage_index += 1
            if isinstance(result, BaseException) or item.stage_index == len(self.stages):
                done.append((item, result))
                continue
            if item.future.cancelled():  # nobody waits for it: no further stage runs it
                continue
            item.payload = result
            try:
                self.stages[item.stage_index].submit(item, block=True)
            except FacepipeError as exc:
                done.append((item, exc))
        if done:
            resolve_all(done)
