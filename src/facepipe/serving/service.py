"""What the protocol edges serve: seed pipeline services and KServe v2 models."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import numpy as np

from facepipe.errors import InvalidInput
from facepipe.serving.bundle import Bundle, TensorSpec
from facepipe.serving.kserve import datatype_of
from facepipe.serving.pipeline import Pipeline
from facepipe.serving.runtime import CPU, RuntimeSpec, open_session
from facepipe.serving.stage import StageConfig
from facepipe.serving.versions import Versions


class Servable(Protocol):
    """A loaded version of a model or service: what answers through its pipeline."""

    pipeline: Pipeline


@dataclass(slots=True)
class SeedService:
    """A seed ``/{name}/prediction`` service: key/value strings in, named arrays out, answered by one
    of its loaded versions."""

    name: str
    variants: Versions[Any]  # version -> Servable
    feed: Callable[[dict[str, str]], Any]
    fetch: Callable[[Any], dict[str, np.ndarray]]


class InferModel(Protocol):
    name: str
    version: str
    platform: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    def ready(self) -> bool: ...

    async def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def metadata(model: InferModel, versions: list[str]) -> dict[str, Any]:
    def spec(t: TensorSpec) -> dict[str, Any]:
        return {"name": t.name, "datatype": datatype_of(t.dtype), "shape": t.shape}

    return {
        "name": model.name,
        "versions": versions,
        "platform": model.platform,
        "inputs": [spec(t) for t in model.inputs],
        "outputs": [spec(t) for t in model.outputs],
    }


def check_inputs(model: InferModel, inputs: dict[str, np.ndarray]) -> None:
    """Names, ranks, fixed dimensions and dtypes against the model's declared inputs."""
    declared = {t.name: t for t in model.inputs}
    if set(inputs) != set(declared):
        raise InvalidInput(f"model {model.name} takes inputs {sorted(declared)}, got {sorted(inputs)}")
    for name, arr in inputs.items():
        spec = declared[name]
        want = datatype_of(spec.dtype)
        got = "BYTES" if arr.dtype == object else datatype_of(arr.dtype.name)
        if got != want:
            raise InvalidInput(f"input {name}: datatype {got}, model {model.name} expects {want}")
        if len(arr.shape) != len(spec.shape) or any(
            d not in (-1, a) for d, a in zip(spec.shape, arr.shape, strict=True)
        ):
            raise InvalidInput(f"input {name}: shape {list(arr.shape)} does not match {spec.shape}")


class TensorOp:
    """Runs a bundle on requests' tensors; requests of equal shape are concatenated into one call."""

    def __init__(self, bundle: Bundle, runtime: RuntimeSpec) -> None:
        self.bundle, self.runtime = bundle, runtime
        self.session: Any = None

    def setup(self) -> None:
        self.session = open_session(self.bundle, self.runtime)

    def __call__(self, batch: list[Any]) -> list[Any]:
        if self.session is None:
            raise RuntimeError("TensorOp.setup() was not called")
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, req in enumerate(batch):
            groups.setdefault(tuple((k, v.shape[1:]) for k, v in sorted(req.items())), []).append(i)
        results: list[Any] = [None] * len(batch)
        names = self.session.output_names
        for idx in groups.values():
            joined = {k: np.concatenate([batch[i][k] for i in idx]) for k in batch[idx[0]]}
            outs = self.session.run(joined)
            start = 0
            for i in idx:
                n = next(iter(batch[i].values())).shape[0]
                results[i] = {name: o[start : start + n] for name, o in zip(names, outs, strict=True)}
                start += n
        return results


@dataclass(slots=True)
class TensorModel:
    """A bundle served as a KServe v2 model, with dynamic batching across requests."""

    bundle: Bundle
    pipeline: Pipeline
    platform: str = "onnxruntime_onnx"
    name: str = field(init=False)
    version: str = field(init=False)
    inputs: list[TensorSpec] = field(init=False)
    outputs: list[TensorSpec] = field(init=False)

    def __post_init__(self) -> None:
        m = self.bundle.manifest
        self.name, self.version, self.inputs, self.outputs = m.name, str(m.version), m.inputs, m.outputs

    @classmethod
    def build(
        cls, bundle: Bundle, stage: StageConfig, timeout_s: float, runtime: RuntimeSpec = CPU
    ) -> TensorModel:
        pipeline = Pipeline(bundle.manifest.name, [(stage, partial(TensorOp, bundle, runtime))], timeout_s)
        return cls(bundle, pipeline)

    def ready(self) -> bool:
        return self.pipeline.running

    async def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_inputs(self, inputs)
        result = await self.pipeline.submit(inputs)
        value: dict[str, np.ndarray] = result.value
        return value


async def gather_items(pipeline: Pipeline, items: list[Any]) -> list[Any]:
    """Submit several items of one request at once; the first failure is raised."""
    results = await asyncio.gather(*(pipeline.submit(x) for x in items))
    return [r.value for r in results]
