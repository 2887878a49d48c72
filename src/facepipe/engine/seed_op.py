"""``SeedOp``: an op written the seed's way, with ``preprocess`` / ``process`` / ``postprocess`` hooks.

``preprocess`` and ``postprocess`` run per item (an item whose hook raises fails alone); ``process``
runs once for the whole batch the engine gathered (``batch_size``, ``auto_batching_timeout``). The
default ``process`` stacks the preprocessed arrays and runs them through the op's model in one call,
giving each item a dict of its outputs by name, as the seed's ``process`` returns its fetch dict.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facepipe.engine.model import Model, Session


class SeedOp:
    """Subclass and override the hooks you need; ``models`` are the bundles named by the node."""

    def __init__(self, *models: Model) -> None:
        self.models = models
        self.sessions: list[Session] = []

    @property
    def session(self) -> Session:
        if not self.sessions:
            raise RuntimeError(f"{type(self).__name__}: no model session (name a bundle with model=)")
        return self.sessions[0]

    def setup(self) -> None:
        """Open a session of each model, in the worker's own thread; extend for state of your own."""
        self.sessions = [m.open() for m in self.models]

    def preprocess(self, item: Any) -> Any:
        """One item in -> the model's input for it (e.g. an array without the batch axis)."""
        return item

    def process(self, batch: list[Any]) -> list[Any]:
        """The whole batch at once; default: one call of the first model over the stacked inputs."""
        session = self.session
        out = session.run({session.input_names[0]: np.stack(batch)})
        return [{k: v[i] for k, v in zip(session.output_names, out, strict=True)} for i in range(len(batch))]

    def postprocess(self, item: Any, out: Any) -> Any:
        """One item and its ``process`` output -> the op's result for the item."""
        return out

    def __call__(self, batch: list[Any]) -> list[Any]:
        results: list[Any] = [_guarded(self.preprocess, x) for x in batch]
        live = [i for i, r in enumerate(results) if not isinstance(r, BaseException)]
        if live:
            outs = self.process([results[i] for i in live])
            if len(outs) != len(live):
                raise RuntimeError(f"{type(self).__name__}.process returned {len(outs)} for {len(live)}")
            for i, out in zip(live, outs, strict=True):
                results[i] = (
                    out if isinstance(out, BaseException) else _guarded(self.postprocess, batch[i], out)
                )
        return results


def _guarded(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as exc:
        return exc
