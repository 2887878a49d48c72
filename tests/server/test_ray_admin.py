"""The admin log that carries model load/unload/weights to every Ray replica, in-process: the log's
class itself (the actor runs the same class) and replicas' ``ClusterControl`` against it."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

from facepipe.models.control import ModelControl
from facepipe.server import ray_admin
from facepipe.server.ray_admin import AdminLogState, ClusterControl


class Method:
    """``actor.method.remote(...)`` for an in-process object: a coroutine, as awaiting a Ray ref is."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def remote(self, *args: Any) -> Any:
        async def call() -> Any:
            out = self.fn(*args)
            return await out if asyncio.iscoroutine(out) else out

        return asyncio.ensure_future(call())


class Handle:
    def __init__(self, obj: AdminLogState) -> None:
        self.obj = obj

    def __getattr__(self, name: str) -> Method:
        return Method(getattr(self.obj, name))


class Local:
    """What a replica's own ModelControl does with weights (the call the test follows)."""

    def __init__(self) -> None:
        self.weights: list[tuple[str, dict[str, float]]] = []

    def set_weights(self, name: str, weights: dict[str, float]) -> dict[str, dict[str, float]]:
        self.weights.append((name, weights))
        return {name: weights}


def test_follow_answers_at_once_when_behind_and_waits_for_an_append_otherwise() -> None:
    async def scenario() -> None:
        log = AdminLogState()
        log.append("weights", ("m", {"1": 1.0}))
        assert await log.follow("r1", 0, 5.0) == [("weights", ("m", {"1": 1.0}))]
        t0 = time.perf_counter()
        assert await log.follow("r1", 1, 0.2) == []  # nothing new: back after wait_s
        assert 0.15 < time.perf_counter() - t0 < 1.0
        waiting = asyncio.ensure_future(log.follow("r1", 1, 30.0))
        await asyncio.sleep(0.05)
        assert log.waiting == {"r1": 1} and not waiting.done()
        t0 = time.perf_counter()
        log.append("unload", ("m", None))
        assert await waiting == [("unload", ("m", None))]
        assert time.perf_counter() - t0 < 0.5  # woken by the append, not by the timeout
        assert log.waiting == {}

    asyncio.run(scenario())


def test_a_replica_that_leaves_while_waiting_does_not_come_back() -> None:
    async def scenario() -> None:
        log = AdminLogState()
        pending = asyncio.ensure_future(log.follow("r", 0, 0.2))  # a stopping replica's last call
        await asyncio.sleep(0.05)
        log.leave("r")
        assert await pending == []
        assert log.applied == {} and log.late(log.append("unload", ("m", None))) == []

    asyncio.run(scenario())


def test_a_waiting_replica_counts_as_live_and_a_silent_one_ages_out() -> None:
    async def scenario() -> None:
        log = AdminLogState()
        seq = log.append("weights", ("m", {"1": 1.0}))
        waiting = asyncio.ensure_future(log.follow("slow", 0, 30.0))  # behind: answered at once
        assert await waiting
        log.since("gone", 0)
        log.applied["gone"] = (0, time.monotonic() - ray_admin.LIVE_S - 1)  # last heard long ago
        assert log.late(seq) == ["slow"]
        log.applied["slow"] = (0, time.monotonic() - ray_admin.LIVE_S - 1)
        pending = asyncio.ensure_future(log.follow("slow", 1, 30.0))  # now waiting: alive
        await asyncio.sleep(0.05)
        assert log.late(seq) == []  # it reported 1 applied on entering the wait
        log.applied["slow"] = (0, log.applied["slow"][1] - ray_admin.LIVE_S - 1)
        assert log.late(seq) == ["slow"]  # silent for long, but its waiting call says it is alive
        pending.cancel()

    asyncio.run(scenario())


def test_wait_returns_when_the_last_replica_reports_or_names_the_late_ones() -> None:
    async def scenario() -> None:
        log = AdminLogState()
        log.since("a", 0)
        log.since("b", 0)
        seq = log.append("weights", ("m", {}))
        done = asyncio.ensure_future(log.wait(seq, 10.0))
        await asyncio.sleep(0.05)
        log.since("a", seq)
        await asyncio.sleep(0.05)
        assert not done.done()
        t0 = time.perf_counter()
        log.since("b", seq)
        assert await done == []
        assert time.perf_counter() - t0 < 0.5  # woken by the report
        assert await log.wait(log.append("unload", ("m", None)), 0.2) == ["a", "b"]

    asyncio.run(scenario())


def test_weights_set_on_one_replica_reach_the_other_at_once() -> None:
    async def scenario() -> None:
        handle = Handle(AdminLogState())
        locals_ = [Local(), Local()]
        replicas = [
            ClusterControl(cast(ModelControl, local), f"r{i}", handle) for i, local in enumerate(locals_)
        ]
        for r in replicas:
            await r.start()
        await asyncio.sleep(0.05)  # both are waiting on the log now
        t0 = time.perf_counter()
        replicas[0].set_weights("m", {"1": 0.5, "2": 0.5})
        while not locals_[1].weights and time.perf_counter() - t0 < 3:
            await asyncio.sleep(0.01)
        assert locals_[1].weights == [("m", {"1": 0.5, "2": 0.5})]
        assert time.perf_counter() - t0 < ray_admin.FOLLOW_S / 2  # not after a poll interval
        assert locals_[0].weights[0] == ("m", {"1": 0.5, "2": 0.5})  # at once, then again from the log
        for r in replicas:
            await r.stop()
        assert handle.obj.applied == {}

    asyncio.run(scenario())
