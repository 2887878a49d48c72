"""A user's app (``facepipe serve --app module:attr``): its services served over every edge.

Each ``Service`` becomes a seed service (``/{name}/prediction``, HTTP and gRPC) and a KServe v2
model of the same name, with the tracer, metrics and config.yml's per-op keys like any built-in. A
service whose DAG names bundles is under model control: a version per version of its first bundle
(loaded, swapped, A/B split online); any other is built once at start as version ``1``. A service
may take the name of a built-in one (the seed's ``ArcFace``) and replaces it on the edges.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facepipe.config import Config
from facepipe.engine import App, Pipeline, Service
from facepipe.errors import ConfigError, InvalidInput
from facepipe.models.bundle import Bundle, TensorSpec
from facepipe.models.control import Managed
from facepipe.models.repository import Repository
from facepipe.models.servable import InferModel, SeedService, check_inputs
from facepipe.models.versions import Versions
from facepipe.runtime.bound import RepositoryModels
from facepipe.runtime.tensor_model import gather_items


def load_app(spec: str) -> App:
    """``module:attr`` (the current directory importable, like ``python -m``): an ``App``, or a
    function returning one."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"--app {spec!r}: expected module:attr, e.g. examples.web_service:app")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"--app {spec!r}: {exc}") from None
    app = obj() if callable(obj) and not isinstance(obj, App) else obj
    if not isinstance(app, App):
        raise ConfigError(f"--app {spec!r}: is a {type(app).__name__}, not a facepipe.engine.App")
    return app


def _spec(t: Any, batch: bool = True) -> TensorSpec:
    dtype = "BYTES" if t.datatype == "BYTES" else np.dtype(t.datatype.lower().replace("fp", "float")).name
    return TensorSpec(t.name, [-1, *t.shape] if batch else list(t.shape), dtype)


@dataclass(slots=True)
class DagModel:
    """A service's DAG as a KServe v2 model: each row of the inputs is one request to the DAG
    (a dict of its values by input name); the outputs are the DAG's per-request outputs, stacked."""

    pipeline: Pipeline
    service: Service
    version: str = "1"
    platform: str = "facepipe_dag"
    parameters: dict[str, str] = field(default_factory=dict)
    name: str = field(init=False)
    inputs: list[TensorSpec] = field(init=False)
    outputs: list[TensorSpec] = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.service.name
        self.inputs = [_spec(t) for t in self.service.inputs]
        self.outputs = [_spec(t) for t in self.service.outputs]

    def ready(self) -> bool:
        return self.pipeline.running

    async def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_inputs(self, inputs)
        rows = {len(a) for a in inputs.values()}
        if len(rows) != 1 or 0 in rows:
            raise InvalidInput(f"model {self.name}: inputs need one equal, non-zero batch size; got {rows}")
        items = [{k: v[i] for k, v in inputs.items()} for i in range(rows.pop())]
        results = await gather_items(self.pipeline, items)
        names = [t.name for t in self.outputs] or list(results[0])
        return {n: np.stack([np.asarray(r[n]) for r in results]) for n in names}


def seed_feed(feed: dict[str, str]) -> dict[str, bytes]:
    """The seed request's key/value pairs, the values as bytes (as KServe gives BYTES elements)."""
    return {k: v.encode() for k, v in feed.items()}


def seed_fetch(out: Any) -> dict[str, np.ndarray]:
    """The DAG's output (arrays by name, per request) with the seed's batch axis of one."""
    if not isinstance(out, dict):
        raise InvalidInput(f"the service's DAG returned a {type(out).__name__}, not a dict of arrays")
    return {k: np.asarray(v)[None, ...] for k, v in out.items()}


async def no_selftest(_model: Any, _bundle: Bundle) -> None:
    return None


@dataclass(slots=True)
class AppPart:
    """The app's services: what the edges serve, the managed ones, and (as a server component) the
    ones built once at start."""

    config: Config
    repo: Repository
    seed: dict[str, SeedService] = field(default_factory=dict)
    models: dict[str, Versions[InferModel]] = field(default_factory=dict)
    managed: list[Managed] = field(default_factory=list)
    static: list[tuple[Service, Versions[Any]]] = field(default_factory=list)

    @classmethod
    def of(cls, app: App, config: Config, repo: Repository) -> AppPart:
        part = cls(config, repo)
        for svc in app.services:
            versions: Versions[Any] = Versions(svc.name)
            part.seed[svc.name] = SeedService(svc.name, versions, seed_feed, seed_fetch)
            part.models[svc.name] = versions
            bundles = svc.dag.models()
            if bundles:
                part.managed.append(Managed(svc.name, bundles[0], versions, part.builder(svc), no_selftest))
            else:
                part.static.append((svc, versions))
        return part

    def builder(self, svc: Service) -> Any:
        def build(bundle: Bundle) -> DagModel:
            models = RepositoryModels(self.config, self.repo, {bundle.manifest.name: bundle})
            model = DagModel(svc.dag.compile(self.config, models), svc, str(bundle.manifest.version))
            model.pipeline.variant = model.version
            return model

        return build

    async def start(self) -> None:
        for svc, versions in self.static:
            model = DagModel(svc.dag.compile(self.config, RepositoryModels(self.config, self.repo)), svc)
            await asyncio.to_thread(model.pipeline.start)
            versions.put("1", model)

    async def stop(self, grace_s: float) -> None:
        for _, versions in self.static:
            for v, model in versions.items():
                versions.remove(v)
                await asyncio.to_thread(model.pipeline.stop)
