"""Loading a user's app and serving a service's DAG as a KServe model and a seed service."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from facepipe.engine import App, Dag, Service, Tensor, per_item
from facepipe.errors import ConfigError, InvalidInput
from facepipe.server.user_app import DagModel, load_app, seed_feed, seed_fetch

ROOT = Path(__file__).resolve().parents[2]


def test_load_app_finds_the_examples_and_names_mistakes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    app = load_app("examples.web_service:app")
    assert [s.name for s in app.services] == ["ArcFace"] and app.services[0].dag.models() == ["mobilefacenet"]
    assert [n.name for n in load_app("examples.custom_op.sharpness:app").face_ops] == ["sharpness"]
    with pytest.raises(ConfigError, match="expected module:attr"):
        load_app("examples.web_service")
    with pytest.raises(ConfigError, match="has no attribute 'nope'"):
        load_app("examples.web_service:nope")
    with pytest.raises(ConfigError, match=r"not a facepipe\.engine\.App"):
        load_app("examples.web_service:dag")


def square_sum(item: dict) -> dict:
    x = np.asarray(item["x"], np.float32)
    if x[0] < 0:
        raise InvalidInput("x: negative")
    return {"sq": x * x, "sum": np.float32(x.sum())}


def test_dag_model_splits_rows_into_requests_and_stacks_outputs() -> None:
    dag = Dag("sq").add("sq", lambda: per_item(square_sum))
    outputs = [Tensor("sq", [2], "FP32"), Tensor("sum", [], "FP32")]
    svc = Service("sq", dag, [Tensor("x", [2], "FP32")], outputs)
    model = DagModel(dag.compile(), svc)
    assert [(t.name, t.shape, t.dtype) for t in model.inputs] == [("x", [-1, 2], "float32")]
    model.pipeline.start()
    try:
        out = asyncio.run(model.infer({"x": np.arange(6, dtype=np.float32).reshape(3, 2)}))
        assert out["sq"].tolist() == [[0, 1], [4, 9], [16, 25]] and out["sum"].tolist() == [1, 5, 9]
        with pytest.raises(InvalidInput, match="x: negative"):
            asyncio.run(model.infer({"x": np.array([[1, 2], [-1, 0]], np.float32)}))
        with pytest.raises(InvalidInput):
            asyncio.run(model.infer({"y": np.zeros((1, 2), np.float32)}))
    finally:
        model.pipeline.stop()


def test_seed_feed_and_fetch() -> None:
    assert seed_feed({"image": "aGk="}) == {"image": b"aGk="}
    assert seed_fetch({"out": np.zeros(3)})["out"].shape == (1, 3)
    with pytest.raises(InvalidInput, match="not a dict"):
        seed_fetch(np.zeros(3))


def test_an_app_is_a_plain_declaration() -> None:
    assert App().services == [] and App().face_ops == []
