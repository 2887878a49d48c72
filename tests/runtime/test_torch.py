"""The PyTorch runtime runs each bundle's own ONNX graph: on CPU it must match onnxruntime within 1e-4;
the CUDA paths (fp16, CUDA graphs) run where a GPU is present and are skipped elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from facepipe.errors import ModelError
from facepipe.face.embed import EmbedOp
from facepipe.models.bundle import load_bundle
from facepipe.runtime import RuntimeSpec, open_session

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install 'facepipe[gpu]')")
from facepipe.runtime import torch_graph  # noqa: E402
from facepipe.runtime.torch_cuda import compile_cache_dir  # noqa: E402
from facepipe.runtime.torch_graph import OnnxModule, _same_pads  # noqa: E402

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("mobilefacenet", (3, 112, 112, 3)),
        ("mtcnn-pnet", (2, 41, 57, 3)),
        ("mtcnn-rnet", (7, 24, 24, 3)),
        ("mtcnn-onet", (4, 48, 48, 3)),
        ("antispoof", (2, 256, 256, 3)),
        ("blazeface", (3, 128, 128, 3)),
    ],
)
def test_cpu_matches_onnxruntime(models_dir: Path, name: str, shape: tuple[int, ...]) -> None:
    if not (models_dir / name / "1").is_dir():
        pytest.skip(f"bundle {name} is not installed in {models_dir}")
    bundle = load_bundle(models_dir / name / "1")
    x = np.random.default_rng(1).uniform(-1, 1, shape).astype(np.float32)
    ort = open_session(bundle, RuntimeSpec(engine="onnxruntime"))
    feed = {ort.input_names[0]: x}
    ref = ort.run(feed)
    got = open_session(bundle, RuntimeSpec(engine="torch")).run(feed)
    for g, r in zip(got, ref, strict=True):
        assert g.shape == r.shape and np.abs(g - r).max() <= 1e-4 * max(1.0, np.abs(r).max())


def test_embeddings_of_real_faces_match(models_dir: Path, lfw_dir: Path) -> None:
    bundle = load_bundle(models_dir / "mobilefacenet" / "1")
    crops = [
        cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)[69:181, 69:181]
        for p in sorted((lfw_dir / "images").glob("*/*.jpg"))[:16]
    ]
    ops = [EmbedOp(bundle, RuntimeSpec(precision="fp32")), EmbedOp(bundle, RuntimeSpec(engine="torch"))]
    for op in ops:
        op.setup()
    ref, got = (np.stack(op(crops)) for op in ops)
    assert np.abs(got - ref).max() <= 1e-4


def test_same_padding_puts_the_odd_pixel_last() -> None:
    assert _same_pads([112, 112], [3, 3], [2, 2], [1, 1]) == [0, 1, 0, 1]
    assert _same_pads([5, 6], [3, 3], [1, 1], [1, 1]) == [1, 1, 1, 1]


@pytest.mark.parametrize("slope_shape", [(8, 1, 1), (1, 8, 1, 1)])
def test_per_channel_prelu_runs_the_fused_kernel(monkeypatch: pytest.MonkeyPatch, slope_shape: tuple) -> None:
    """MobileFaceNet's slopes are (1, C, 1, 1): they must take F.prelu (one kernel), not torch.where
    (three), with the same values."""
    calls = []
    real = torch_graph.F.prelu
    monkeypatch.setattr(torch_graph.F, "prelu", lambda x, w: calls.append(w.shape) or real(x, w))
    x = torch.randn(2, 8, 5, 5)
    slope = torch.rand(slope_shape)
    got = torch_graph._prelu(None, [x, slope], {})  # type: ignore[arg-type]
    assert calls == [torch.Size([8])]
    assert torch.equal(got, torch.where(x >= 0, x, x * slope.reshape(1, 8, 1, 1)))


def test_other_slopes_keep_the_generic_path() -> None:
    x, slope = torch.randn(2, 8, 5, 5), torch.rand(1, 1, 5, 5)  # per pixel, not per channel
    got = torch_graph._prelu(None, [x, slope], {})  # type: ignore[arg-type]
    assert torch.equal(got, torch.where(x >= 0, x, x * slope))


def test_compile_cache_is_a_lasting_directory_named_for_inductor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    where = compile_cache_dir(str(tmp_path / "cache"))
    assert where.is_dir()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(where)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert compile_cache_dir("") == tmp_path / ".cache" / "facepipe" / "torch-compile"


def test_unknown_operators_are_refused_by_name() -> None:
    node = onnx.helper.make_node("Softplus", ["x"], ["y"], name="sp")
    graph = onnx.helper.make_graph(
        [node],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    with pytest.raises(ModelError, match="Softplus"):
        OnnxModule(onnx.helper.make_model(graph))


@CUDA
def test_cuda_fp16_with_graphs_matches_fp32(models_dir: Path, lfw_dir: Path) -> None:
    bundle = load_bundle(models_dir / "mobilefacenet" / "1")
    files = sorted((lfw_dir / "images").glob("*/*.jpg"))[:40]
    pixels = np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)[69:181, 69:181] for p in files])
    fp32 = open_session(bundle, RuntimeSpec(device="cuda", precision="fp32", cuda_graphs=False))
    fp16 = open_session(bundle, RuntimeSpec(device="cuda", precision="fp16"))
    a, b = fp32.run_pixels(pixels)[0], fp16.run_pixels(pixels)[0]
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() >= 0.9999
    assert np.allclose(fp16.run_pixels(pixels[:5])[0], b[:5], atol=1e-3)  # a smaller bucket's graph
