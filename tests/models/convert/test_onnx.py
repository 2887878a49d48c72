"""Freeing the batch axis of a graph published for batch 1 (BlazeFace's zero padding and reshapes)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from facepipe.models.convert.onnx import free_batch_axis, unbake_batch
from facepipe.models.convert.verify import batch_parity, run_onnx


def _baked(zeros_first: bool = False) -> onnx.ModelProto:
    """[1,2,4,4] -> concat 3 zero channels (ConstantOfShape [1,3,4,4]) -> conv 1x1 -> reshape [1,16,1]."""
    w = np.random.default_rng(0).normal(size=(1, 5, 1, 1)).astype(np.float32)
    inits = [
        numpy_helper.from_array(np.array([1, 3, 4, 4], np.int64), "zshape"),
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(np.array([1, 16, 1], np.int64), "rshape"),
    ]
    joined = ["z", "x"] if zeros_first else ["x", "z"]
    nodes = [
        helper.make_node("ConstantOfShape", ["zshape"], ["z"]),
        helper.make_node("Concat", joined, ["cat"], axis=1),
        helper.make_node("Conv", ["cat", "w"], ["conv"]),
        helper.make_node("Reshape", ["conv", "rshape"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "baked",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 16, 1])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("zeros_first", [False, True])
def test_a_graph_baked_for_batch_one_takes_any_batch(zeros_first: bool) -> None:
    published = _baked(zeros_first)
    model = onnx.ModelProto()
    model.CopyFrom(published)
    assert unbake_batch(model) == 2
    free_batch_axis(model)
    onnx.checker.check_model(model)
    assert "ConstantOfShape" not in {n.op_type for n in model.graph.node}
    samples = [np.random.default_rng(i).normal(size=(1, 2, 4, 4)).astype(np.float32) for i in range(3)]
    parity = batch_parity(model, published, samples)
    assert parity.ok and all(o.max_abs_diff == 0 for o in parity.outputs)
    assert run_onnx(model, [np.concatenate(samples)])[0][0].shape == (3, 16, 1)


def test_a_wrong_rewrite_would_be_caught_by_batch_parity() -> None:
    published = _baked()
    broken = onnx.ModelProto()
    broken.CopyFrom(published)
    unbake_batch(broken)
    free_batch_axis(broken)
    w = next(t for t in broken.graph.initializer if t.name == "w")
    w.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(w) * 1.01, "w"))
    samples = [np.ones((1, 2, 4, 4), np.float32) for _ in range(2)]
    assert not batch_parity(broken, published, samples).ok
