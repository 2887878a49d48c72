"""``facepipe convert`` for plain ONNX models and the L2 head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from facepipe.errors import ConversionError
from facepipe.models.bundle import Preprocess, load_bundle
from facepipe.models.convert.importer import ImportOptions, import_model
from facepipe.models.convert.onnx import add_l2_head
from facepipe.models.convert.paddle import find_paddle_files
from facepipe.models.convert.verify import run_onnx


def _tiny_embedder(path: Path) -> Path:
    """A user's own 'ArcFace-style' model: NCHW 3x16x16 -> global pool -> 8-d linear embedding."""
    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32), "w")
    nodes = [
        helper.make_node("GlobalAveragePool", ["data"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["fc1"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("data", onnx.TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("fc1", onnx.TensorProto.FLOAT, [1, 8])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def test_import_user_onnx_with_l2_head(tmp_path: Path) -> None:
    src = _tiny_embedder(tmp_path / "tiny.onnx")
    opts = ImportOptions("tiny", 3, "embedding", "NCHW", Preprocess(), l2_output="fc1", licence="MIT")
    opts.commercial = True
    bundle = load_bundle(import_model(src, opts, tmp_path / "repo"))
    assert bundle.path == tmp_path / "repo" / "tiny" / "3"
    m = bundle.manifest
    assert (m.source.licence, m.source.commercial) == ("MIT", True)
    assert m.inputs[0].shape == [-1, 3, 16, 16] and m.outputs[0].shape[-1] == 8 and m.normalized
    x = np.random.default_rng(1).normal(size=(4, 3, 16, 16)).astype(np.float32)
    (out,) = run_onnx(bundle.model_path, [x])[0]
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_l2_head_needs_existing_output(tmp_path: Path) -> None:
    model = onnx.load(str(_tiny_embedder(tmp_path / "t.onnx")))
    with pytest.raises(ConversionError, match="no output named 'nope'"):
        add_l2_head(model, "nope")


def test_unknown_source_type(tmp_path: Path) -> None:
    src = tmp_path / "model.pt"
    src.write_bytes(b"x")
    with pytest.raises(ConversionError, match="unknown model type"):
        import_model(src, ImportOptions("x"), tmp_path)


def test_paddle_directory_needs_both_files(tmp_path: Path) -> None:
    (tmp_path / "inference.pdmodel").write_bytes(b"")
    with pytest.raises(ConversionError, match=r"one \*\.pdmodel and one \*\.pdiparams"):
        find_paddle_files(tmp_path)


def test_auto_layout_from_the_input_shape(tmp_path: Path) -> None:
    src = _tiny_embedder(tmp_path / "tiny.onnx")  # 1 x 3 x 16 x 16: channels first
    bundle = load_bundle(import_model(src, ImportOptions("tiny", layout="auto"), tmp_path / "repo"))
    assert bundle.manifest.inputs[0].layout == "NCHW"


def test_unknown_layout_is_refused(tmp_path: Path) -> None:
    src = _tiny_embedder(tmp_path / "tiny.onnx")
    with pytest.raises(ConversionError, match="expected NHWC, NCHW or auto"):
        import_model(src, ImportOptions("tiny", layout="NWHC"), tmp_path / "repo")
