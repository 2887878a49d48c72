"""The generic pipeline engine and facepipe's public pipeline API: ops, a DAG of them, the models
they name, and the app object that ``facepipe serve --app module:attr`` serves. Knows nothing of
faces, HTTP or model formats.

    from facepipe.engine import App, Dag, SeedOp, Service

Everything a user's ``web_service.py`` needs is exported here; the rest of the package is internal.
"""

from facepipe.engine.app import App, Service, Tensor
from facepipe.engine.dag import REQUEST, Dag, Node
from facepipe.engine.model import Model, Models, Session
from facepipe.engine.op import Chain, FunctionOp, Op, OpFactory, per_item
from facepipe.engine.pipeline import Pipeline, Result
from facepipe.engine.seed_op import SeedOp
from facepipe.engine.worker import worker_index
from facepipe.errors import InvalidInput  # raise it for a bad request: the client gets why (HTTP 400)

__all__ = [
    "REQUEST",
    "App",
    "Chain",
    "Dag",
    "FunctionOp",
    "InvalidInput",
    "Model",
    "Models",
    "Node",
    "Op",
    "OpFactory",
    "Pipeline",
    "Result",
    "SeedOp",
    "Service",
    "Session",
    "Tensor",
    "per_item",
    "worker_index",
]
