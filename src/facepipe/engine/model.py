"""How an op names a model: a bundle name, resolved by the server into a ``Model`` whose runtime
(OpenVINO, onnxruntime, torch; threads, device, precision) comes from config.yml's
``op.<node>.local_service_conf``, like the seed's ``local_service_conf``. The engine only declares
the seams; the server fills them from the model repository."""

from __future__ import annotations

from typing import Any, Protocol


class Session(Protocol):
    """An inference session: named input arrays in, output arrays out (in ``output_names`` order)."""

    input_names: list[str]
    output_names: list[str]

    def run(self, inputs: dict[str, Any]) -> list[Any]: ...


class Model(Protocol):
    """One version of a bundle with the runtime chosen for the node that uses it."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def manifest(self) -> Any:
        """The bundle's manifest (input size, mean/std, colour order, outputs ...)."""

    def open(self) -> Session:
        """A session of this model's own; call it in the op's ``setup`` (the worker's thread)."""


class Models(Protocol):
    """Resolves a node's declared bundle names (the server passes one to ``Dag.compile``)."""

    def model(self, bundle: str, node: str) -> Model: ...
