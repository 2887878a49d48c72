"""What the protocol edges serve: seed pipeline services and KServe v2 models."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from facepipe.engine.pipeline import Pipeline
from facepipe.errors import InvalidInput
from facepipe.models.bundle import TensorSpec, datatype_of
from facepipe.models.versions import Versions


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
    parameters: dict[str, str]  # facts shown in its metadata, e.g. the precision it runs at
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    def ready(self) -> bool: ...

    async def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


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
