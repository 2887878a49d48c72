"""A bundle served as a KServe v2 model: requests' tensors batched through one engine stage."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np

from facepipe.engine.pipeline import Pipeline
from facepipe.engine.stage import StageConfig
from facepipe.errors import InvalidInput
from facepipe.models.bundle import Bundle, TensorSpec
from facepipe.models.servable import check_inputs
from facepipe.runtime import CPU, RuntimeSpec, open_session, platform_of, precision_of


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
            try:
                outs = self.session.run(joined)
            except Exception as exc:  # inputs that passed check_inputs but the model refuses
                refused = InvalidInput(
                    f"model {self.bundle.manifest.name} refused the input: {str(exc)[:300]}"
                )
                for i in idx:
                    results[i] = refused
                continue
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
    parameters: dict[str, str] = field(default_factory=dict)  # shown in its metadata (precision)
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
        choice = precision_of(bundle, runtime)
        runtime = replace(runtime, precision=choice.precision)
        pipeline = Pipeline(bundle.manifest.name, [(stage, partial(TensorOp, bundle, runtime))], timeout_s)
        return cls(bundle, pipeline, platform_of(bundle, runtime), parameters=choice.parameters())

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
