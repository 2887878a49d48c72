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
Replicas follow the log with a waiting call that the log answers when a call is appended (a long poll),
so a call reaches every replica at once and an idle cluster sends the log one call per replica every
``FOLLOW_S``.
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
FOLLOW_S = 2.0  # a replica's waiting call on the log returns after this long when nothing was appended
LIVE_S = 5.0  # a replica not heard from for this long after its last call returned is gone (its node)
RETRY_S = 0.25  # pause before asking again after a failed call (the log actor restarting)


class AdminLogState:
    """The ordered admin calls of one deployment, and how far each replica has applied them. Replicas
    follow it with a waiting call (``follow``) that returns as soon as a call is appended, so a
    change reaches every replica at once and an idle replica costs one call every ``FOLLOW_S``."""

    def __init__(self) -> None:
        self.ops: list[tuple[str, tuple[Any, ...]]] = []
        self.applied: dict[str, tuple[int, float]] = {}  # replica -> (calls applied, when last seen)
        self.waiting: dict[str, int] = {}  # replica -> its follow calls pending (it is alive)
        self._grown = asyncio.Event()  # set (and replaced) on every append
        self._progress = asyncio.Event()  # set (and replaced) whenever a replica reports

    def append(self, op: str, args: tuple[Any, ...]) -> int:
        self.ops.append((op, args))
        self._grown = _fire(self._grown)
        return len(self.ops)

    def since(self, replica: str, applied: int) -> list[tuple[str, tuple[Any, ...]]]:
        """The calls after the first ``applied``; also records that ``replica`` has applied those."""
        self.applied[replica] = (applied, time.monotonic())
        self._progress = _fire(self._progress)
        return self.ops[applied:]

    async def follow(self, replica: str, applied: int, wait_s: float) -> list[tuple[str, tuple[Any, ...]]]:
        """``since``, but when there is nothing new, wait up to ``wait_s`` for an append first."""
        if len(self.ops) <= applied:
            self.since(replica, applied)
            self.waiting[replica] = self.waiting.get(replica, 0) + 1
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._grown.wait(), wait_s)
            finally:
                self.waiting[replica] -= 1
                if not self.waiting[replica]:
                    del self.waiting[replica]
            if replica not in self.applied:  # it left while waiting (a stopping replica's call)
                return []
        return self.since(replica, applied)

    def leave(self, replica: str) -> None:
        self.applied.pop(replica, None)

    def late(self, seq: int) -> list[str]:
        """Live replicas that have not applied the first ``seq`` calls."""
        now = time.monotonic()
        live = [r for r, (_, seen) in self.applied.items() if r in self.waiting or now - seen < LIVE_S]
        return [r for r in live if self.applied[r][0] < seq]

    async def wait(self, seq: int, timeout_s: float) -> list[str]:
        """Wait until every live replica has applied the first ``seq`` calls; the ones that had not."""
        end = time.monotonic() + timeout_s
        while (late := self.late(seq)) and time.monotonic() < end:
            with contextlib.suppress(TimeoutError):  # woken by a report; a dead replica ages out
                await asyncio.wait_for(self._progress.wait(), min(1.0, max(end - time.monotonic(), 0)))
        return late


def _fire(event: asyncio.Event) -> asyncio.Event:
    """Wake everything waiting on ``event``; the fresh event later waiters wait on."""
    event.set()
    return asyncio.Event()


AdminLog = ray.remote(AdminLogState)


def log_name(app: str) -> str:
    return f"facepipe-admin:{app}"


def create_log(app: str) -> None:
    """The log of ``app``, on the head node (it outlives worker nodes); kept across redeployments, so
    that replicas of a new deployment (or a scaled one, whose replicas stay) load what was loaded."""
    head = {"node:__internal_head__": 0.001}
    AdminLog.options(
        name=log_name(app),
        namespace="facepipe",
        lifetime="detached",
        resources=head,
        get_if_exists=True,
        num_cpus=0,
        max_concurrency=10_000,  # a waiting call per replica
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
            try:
                if await self.admin.follow.remote(self.replica, self.applied, FOLLOW_S):
                    await self.catch_up()
            except Exception:
                log.exception("following the admin log failed")
                await asyncio.sleep(RETRY_S)
