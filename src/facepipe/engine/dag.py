"""The DAG builder: ops as named nodes with named inputs, compiled into a ``Pipeline``.

A node reads the request (``REQUEST``) or the outputs of nodes declared before it. Several nodes
reading one output run concurrently (fan-out); a node reading several outputs waits for all of them
and gets them as a tuple in the order it named them (fan-in). Each node is one stage: its
``concurrency``, ``batch_size``, ``auto_batching_timeout``, ``timeout`` and ``retry`` come from
config.yml's ``op.<node name>``. A node may name bundles (``model=``): its op factory is then called
with one ``Model`` per name, resolved by the server (so the runtime follows config and the bundle's
version follows the repository).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from facepipe.config import Config
from facepipe.engine.model import Model, Models
from facepipe.engine.op import Op, OpFactory
from facepipe.engine.pipeline import REQUEST as REQUEST_INDEX
from facepipe.engine.pipeline import Pipeline
from facepipe.engine.stage import StageConfig, stage_config
from facepipe.errors import ConfigError

REQUEST = "request"  # the name a node gives as input to read the request itself


@dataclass(slots=True, frozen=True)
class Node:
    name: str
    op: Callable[..., Op]  # an op factory; called with one Model per name in ``models``
    inputs: tuple[str, ...] = ()  # () in ``Dag.add``: the node added before it (or the request)
    models: tuple[str, ...] = ()  # bundle names


class Dag:
    """Nodes in the order they were added; the last one is the output (its result is the request's)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.nodes: list[Node] = []

    def add(
        self,
        name: str,
        op: Callable[..., Op],
        inputs: Sequence[str] | str = (),
        model: Sequence[str] | str = (),
    ) -> Dag:
        """Add node ``name`` running ops made by ``op``; ``inputs``: the nodes it reads (default:
        the last node added, or the request); ``model``: the bundle(s) its op is built with."""
        ins = (inputs,) if isinstance(inputs, str) else tuple(inputs)
        ins = ins or ((self.nodes[-1].name,) if self.nodes else (REQUEST,))
        known = {n.name for n in self.nodes}
        if not name or name == REQUEST or name in known:
            raise ConfigError(f"dag {self.name}: node name {name!r} is empty, reserved or taken")
        unknown = [i for i in ins if i != REQUEST and i not in known]
        if unknown:
            raise ConfigError(f"dag {self.name}: node {name} reads {unknown}, not added before it")
        models = (model,) if isinstance(model, str) else tuple(model)
        self.nodes.append(Node(name, op, ins, models))
        return self

    def models(self) -> list[str]:
        """Every bundle name its nodes use, first use first."""
        return list(dict.fromkeys(m for n in self.nodes for m in n.models))

    def compile(
        self, config: Config | None = None, models: Models | None = None, timeout_s: float | None = None
    ) -> Pipeline:
        """The pipeline: one stage per node that leads to the output, configured by node name."""
        nodes = self._used()
        index = {n.name: i for i, n in enumerate(nodes)}
        steps: list[tuple[StageConfig, OpFactory]] = []
        for n in nodes:
            cfg = stage_config(config, n.name) if config is not None else StageConfig(n.name)
            steps.append((cfg, self._factory(n, models)))
        wiring = [tuple(REQUEST_INDEX if i == REQUEST else index[i] for i in n.inputs) for n in nodes]
        if timeout_s is None:
            timeout_s = config.request_timeout_ms / 1000.0 if config is not None else 30.0
        return Pipeline(self.name, steps, timeout_s, inputs=wiring)

    def _used(self) -> list[Node]:
        """The nodes the output depends on, in order; any other node is a mistake worth naming."""
        if not self.nodes:
            raise ConfigError(f"dag {self.name}: no nodes")
        by_name = {n.name: n for n in self.nodes}
        wanted, todo = set(), [self.nodes[-1].name]
        while todo:
            name = todo.pop()
            if name != REQUEST and name not in wanted:
                wanted.add(name)
                todo += by_name[name].inputs
        unused = [n.name for n in self.nodes if n.name not in wanted]
        if unused:
            raise ConfigError(f"dag {self.name}: nodes {unused} do not lead to the output")
        return list(self.nodes)

    def _factory(self, node: Node, models: Models | None) -> OpFactory:
        if not node.models:
            return node.op
        if models is None:
            raise ConfigError(
                f"dag {self.name}: node {node.name} names models {list(node.models)}, none given"
            )
        bound = tuple(models.model(m, node.name) for m in node.models)
        # a partial of module-level callables: it pickles into process ops (is_thread_op: false)
        return partial(_with_models, node.op, bound)


def _with_models(op: Callable[..., Op], models: tuple[Model, ...]) -> Any:
    return op(*models)
