"""What a user's ``web_service.py`` declares for ``facepipe serve --app module:attr``.

A ``Service`` is a DAG served under a name over every edge: the seed's ``/{name}/prediction`` (HTTP
and gRPC; the request's key/value pairs are the DAG's input, as a dict) and KServe v2 (each row of
the input tensors is one request to the DAG, its inputs by tensor name). The DAG's output is a dict
of arrays by name. A service whose nodes name bundles has a version per version of its first bundle,
loaded, swapped and split online like any model. ``face_ops`` are nodes added to the built-in
``/v1`` face DAG: each reads aligned photos (node ``align``) and returns, per photo, one value per
face; the values appear in ``/v1`` face records under ``extra.<node name>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from facepipe.engine.dag import Dag, Node


@dataclass(slots=True)
class Tensor:
    """A KServe input or output of a service, per request (no batch axis): BYTES, FP32, INT64 ..."""

    name: str
    shape: list[int] = field(default_factory=list)
    datatype: str = "BYTES"


@dataclass(slots=True)
class Service:
    name: str
    dag: Dag
    inputs: list[Tensor] = field(default_factory=lambda: [Tensor("image")])
    outputs: list[Tensor] = field(default_factory=list)


@dataclass(slots=True)
class App:
    services: list[Service] = field(default_factory=list)
    face_ops: list[Node] = field(default_factory=list)
