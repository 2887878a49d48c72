"""Model control: which versions of each model are loaded, and loading or unloading them online.

A version is loaded in steps: built (its pipeline made), started, self-tested on the bundle's golden
inputs (which also warms it up), and only then published into its ``Versions`` in one step. An older
version that the policy no longer wants is taken out after that: new requests stop reaching it,
requests already on it finish (drain), then its pipeline stops. A version that fails any step is
stopped and reported (repository index and log); whatever served before keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facepipe.engine import heap
from facepipe.errors import FacepipeError, ModelError, NotFound
from facepipe.models.bundle import Bundle
from facepipe.models.repository import Repository
from facepipe.models.versions import Versions

log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class Policy:
    """Which versions of a model to serve (Triton's version policy): the newest ``latest``, or
    ``specific`` ones, or ``all``."""

    latest: int = 1
    specific: tuple[int, ...] = ()
    all: bool = False

    def wanted(self, available: list[int]) -> list[int]:
        if self.all:
            return sorted(available)
        if self.specific:
            return sorted(v for v in available if v in self.specific)
        return sorted(available)[-self.latest :]


@dataclass(slots=True)
class Managed:
    """A served name whose versions are the versions of one repository model."""

    name: str
    model: str
    versions: Versions[Any]  # items have .pipeline
    build: Callable[[Bundle], Any]
    selftest: Callable[[Any, Bundle], Awaitable[None]]


def golden(bundle: Bundle) -> list[tuple[dict[str, np.ndarray], list[np.ndarray]]]:
    """The bundle's golden cases: (inputs by name, expected outputs in order)."""
    if not bundle.golden_path.is_file():
        raise ModelError(f"{bundle.path}: no golden inputs to self-test with")
    data = np.load(bundle.golden_path)
    names = [t.name for t in bundle.manifest.inputs]
    cases = []
    i = 0
    while f"input_{i}" in data:
        outs = [data[f"output_{i}_{j}"] for j in range(len(bundle.manifest.outputs))]
        cases.append(({names[0]: data[f"input_{i}"]}, outs))
        i += 1
    return cases


@dataclass(slots=True)
class ModelControl:
    repo: Repository
    managed: list[Managed]
    policies: dict[str, Policy]
    statuses: dict[tuple[str, str], tuple[str, str]]  # (model, version) -> (state, reason), shared
    poll_s: float = 0.0
    drain_s: float = 30.0
    held_out: set[tuple[str, int]] = field(default_factory=set)  # unloaded on request: polls skip them
    on_poll: Callable[[], None] = lambda: None  # also run on every poll (e.g. re-read config weights)
    rejected: dict[tuple[str, int], float] = field(default_factory=dict)  # -> bundle mtime when rejected
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _task: asyncio.Task[None] | None = None

    def models(self) -> set[str]:
        return {m.model for m in self.managed}

    def resolve(self, name: str) -> str:
        """The repository model behind ``name`` (a served name such as ``ArcFace``, or a model)."""
        for m in self.managed:
            if name in (m.name, m.model):
                return m.model
        raise NotFound(f"model {name!r} is not under model control; controlled: {sorted(self.models())}")

    def set_weights(self, name: str, weights: dict[str, float]) -> dict[str, dict[str, float]]:
        """A/B weights for every served name of ``name``'s model; versions must be loaded."""
        model = self.resolve(name)
        out = {}
        for m in (m for m in self.managed if m.model == model):
            missing = sorted(set(weights) - set(m.versions.names()))
            if missing:
                raise NotFound(f"{m.name}: versions {missing} are not loaded (loaded: {m.versions.names()})")
            m.versions.set_weights(weights)
            out[m.name] = m.versions.weights
        log.info("traffic split of %s set to %s", model, weights)
        return out

    async def start(self) -> None:
        if self.poll_s > 0:
            self._task = asyncio.create_task(self._poll())

    async def stop(self, grace_s: float) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                self.on_poll()
            except Exception:
                log.exception("poll hook failed")
            for model in sorted(self.models()):
                try:
                    await self.sync(model)
                except Exception:
                    log.exception("polling model %s failed", model)

    async def sync(self, model: str, pin: int | None = None, explicit: bool = False) -> dict[str, str]:
        """Bring ``model`` in line with its policy, over the versions that are neither held out nor
        rejected-and-unchanged: load what is new, then retire what the policy dropped. ``explicit``
        (a load call) lifts the holds of earlier unload calls; ``pin`` also loads that version.
        Returns {version: outcome}."""
        self.resolve(model)
        async with self._lock:
            available = self.repo.versions(model)
            if pin is not None and pin not in available:
                raise NotFound(f"model {model!r} has no version {pin} in the repository (has {available})")
            if explicit:
                self.held_out = {
                    (m, v) for m, v in self.held_out if m != model or (pin is not None and v != pin)
                }
            usable = [
                v
                for v in available
                if (model, v) not in self.held_out and (v == pin or not self._still_rejected(model, v))
            ]
            wanted = set(self.policies.get(model, Policy()).wanted(usable)) | (
                {pin} if pin is not None else set()
            )
            outcome: dict[str, str] = {}
            for m in (m for m in self.managed if m.model == model):
                served = {int(v) for v in m.versions.names() if v.isdigit()}
                for v in sorted(wanted - served):
                    outcome[str(v)] = await self._load(m, v)
                loaded = {int(v) for v in m.versions.names() if v.isdigit()}
                for v in sorted(loaded - wanted):
                    if len(m.versions) > 1:
                        await self._retire(m, str(v))
                        outcome[str(v)] = "unloaded"
            if outcome:  # what was built is exempted and what was dropped collected, once per call
                await asyncio.to_thread(heap.reclaim)
            return outcome

    def _mtime(self, model: str, version: int) -> float:
        folder = self.repo.root / model / str(version)
        return max((p.stat().st_mtime for p in folder.iterdir()), default=0.0) if folder.is_dir() else 0.0

    def _still_rejected(self, model: str, version: int) -> bool:
        """Rejected before and unchanged since: not retried (a poll would fail it again and again)."""
        when = self.rejected.get((model, version))
        return when is not None and when == self._mtime(model, version)

    async def unload(self, model: str, version: int | None = None) -> list[str]:
        """Take ``version`` (default: every version) of ``model`` out of service until loaded again."""
        self.resolve(model)
        async with self._lock:
            if version is None:
                self.held_out |= {(model, v) for v in self.repo.versions(model)}
            gone: list[str] = []
            for m in (m for m in self.managed if m.model == model):
                for v in [x for x in m.versions.names() if version is None or x == str(version)]:
                    self.held_out.add((model, int(v)))
                    await self._retire(m, v)
                    gone.append(v)
                    self.statuses[(model, v)] = ("UNAVAILABLE", "unloaded on request")
            if gone:
                await asyncio.to_thread(heap.reclaim)  # its models, no longer exempt, collected once
            return sorted(set(gone))

    async def _load(self, m: Managed, version: int) -> str:
        key = (m.model, str(version))
        self.statuses[key] = ("LOADING", "")
        item = None
        try:
            bundle = self.repo.bundle(m.model, version)
            item = m.build(bundle)
            await asyncio.to_thread(item.pipeline.start)
            await m.selftest(item, bundle)
        except Exception as exc:
            if item is not None:
                await asyncio.to_thread(item.pipeline.stop)
            reason = exc.message if isinstance(exc, FacepipeError) else f"{type(exc).__name__}: {exc}"
            self.statuses[key] = ("UNAVAILABLE", f"rejected: {reason}")
            self.rejected[(m.model, version)] = self._mtime(m.model, version)
            log.error(
                "%s version %d rejected, still serving %s: %s", m.name, version, m.versions.names(), reason
            )
            return f"rejected: {reason}"
        m.versions.put(str(version), item)
        self.statuses.pop(key, None)
        self.rejected.pop((m.model, version), None)
        log.info("%s version %d loaded, self-tested and serving", m.name, version)
        return "loaded"

    async def _retire(self, m: Managed, version: str) -> None:
        item = m.versions.remove(version)
        if item is None:
            return
        await asyncio.sleep(0.05)
        deadline = asyncio.get_running_loop().time() + self.drain_s
        while item.pipeline.in_flight and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(item.pipeline.stop)
        log.info("%s version %s unloaded after its requests finished", m.name, version)
