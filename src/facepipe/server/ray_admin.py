"""Admin calls that reach every Ray Serve replica: model load, unload and A/B weights.

Ray Serve routes a request to ONE replica, so an admin call (``/v2/repository/models/{m}/load``, its
gRPC twin, ``/weights``) would change only the replica that answered it. Here the call is appended to
one ordered log held by a small named actor (``AdminLog``, on the head node, created by the first
``facepipe serve --engine ray`` of an application and kept while the cluster runs), and every replica
applies the log in order, each through its own
``ModelControl`` (so each loads, self-tests, swaps and drains as a single server does: no request
fails during the rollout). A replica started later (autoscaling, a replaced node) replays the whole log
and ends in the same state. The replica that took the call applies it through the same log, answers
with its own outcome, and first waits (``ray.admin_timeout_s``) until every live replica has applied it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, cast

import ray

from facepipe.models.control import ModelControl

log = logging.getLogger(__name__)
POLL_S = 0.25  # how often a replica asks the log for calls it has not applied
LIVE_S = 5.0  # a replica not heard from for this long is no longer waited for (its node is gone)


@ray.remote(num_cpus=0)
class AdminLog:
    """The ordered admin calls of one deployment, and how far each replica has applied them."""

    def __init__(self) -> None:
        self.ops: list[tuple[str, tuple[Any, ...]]] = []
        self.applied: dict[str, tuple[int, float]] = {}  # replica -> (calls applied, when last seen)

    def append(self, op: str, args: tuple[Any, ...]) -> int:
        self.ops.append((op, args))
        return len(self.ops)

    def since(self, replica: str, applied: int) -> list[tuple[str, tuple[Any, ...]]]:
        """The calls after the first ``applied``; also records that ``replica`` has applied those."""
        self.applied[replica] = (applied, time.monotonic())
        return self.ops[applied:]

    def leave(self, replica: str) -> None:
        self.applied.pop(replica, None)

    async def wait(self, seq: int, timeout_s: float) -> list[str]:
        """Wait until every live replica has applied the first ``seq`` calls; the ones that had not."""
        end = time.monotonic() + timeout_s
        while True:
            now = time.monotonic()
            late = [r for r, (n, seen) in self.applied.items() if n < seq and now - seen < LIVE_S]
            if not late or now > end:
                return late
            await asyncio.sleep(POLL_S / 2)


def log_name(app: str) -> str:
    return f"facepipe-admin:{app}"


def create_log(app: str) -> None:
    """The log of ``app``, on the head node (it outlives worker nodes); kept across redeployments, so
    that replicas of a new deployment (or a scaled one, whose replicas stay) load what was loaded."""
    head = {"node:__internal_head__": 0.001}
    AdminLog.options(  # type: ignore[attr-defined]
        name=log_name(app), namespace="facepipe", lifetime="detached", resources=head, get_if_exists=True
    ).remote()


@dataclass(slots=True)
class ClusterControl:
    """``ModelControl``'s admin calls as the edges make them, applied on every replica through the
    log; everything else is the replica's own ``ModelControl``."""

    local: ModelControl
    replica: str
    admin: Any  # the AdminLog actor handle
    timeout_s: float = 60.0
    applied: int = 0
    results: dict[int, Any] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _task: asyncio.Task[None] | None = None

    def __getattr__(self, name: str) -> Any:  # resolve, models, managed, statuses, ...
        return getattr(self.local, name)

    def as_control(self) -> ModelControl:
        """What the edges hold as ``state.control`` (it answers the same calls)."""
        return cast(ModelControl, self)

    async def sync(self, model: str, pin: int | None = None, explicit: bool = False) -> dict[str, str]:
        return cast(dict[str, str], await self._everywhere("sync", (model, pin, explicit)))

    async def unload(self, model: str, version: int | None = None) -> list[str]:
        return cast(list[str], await self._everywhere("unload", (model, version)))

    def set_weights(self, name: str, weights: dict[str, float]) -> dict[str, dict[str, float]]:
        """Applied here at once (the edge needs the answer now), then by every other replica from the
        log (this one applies it again from the log: setting the same weights twice is a no-op)."""
        out = self.local.set_weights(name, weights)
        self.admin.append.remote("weights", (name, weights))
        return out

    async def start(self) -> None:
        await self.catch_up()
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.admin.leave.remote(self.replica)

    async def _everywhere(self, op: str, args: tuple[Any, ...]) -> Any:
        seq = await self.admin.append.remote(op, args)
        await self.catch_up()
        late = await self.admin.wait.remote(seq, self.timeout_s)
        if late:
            log.warning("admin call %s%s not yet applied by replicas %s", op, args, late)
        result = self.results.pop(seq)
        if isinstance(result, Exception):
            raise result
        return result

    async def catch_up(self) -> None:
        async with self._lock:
            ops = await self.admin.since.remote(self.replica, self.applied)
            for op, args in ops:
                self.applied += 1
                try:
                    self.results[self.applied] = await self._apply(op, args)
                except Exception as exc:  # the caller (if it is this replica) gets it; others log it
                    log.warning("admin call %s%s failed here: %s", op, args, exc)
                    self.results[self.applied] = exc
            # keep only results a caller on this replica may still collect
            for old in [s for s in self.results if s < self.applied - 1000]:
                del self.results[old]
            if ops:  # say at once that this replica has applied them
                await self.admin.since.remote(self.replica, self.applied)

    async def _apply(self, op: str, args: tuple[Any, ...]) -> Any:
        if op == "sync":
            return await self.local.sync(args[0], pin=args[1], explicit=args[2])
        if op == "unload":
            return await self.local.unload(args[0], args[1])
        return self.local.set_weights(args[0], args[1])

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            try:
                await self.catch_up()
            except Exception:
                log.exception("following the admin log failed")
