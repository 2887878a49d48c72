"""The OpenVINO runtime compiles each bundle's own ONNX graph: it must give onnxruntime's outputs, and
``engine: auto`` must pick it only where a bundle's inputs vary in batch alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facepipe.models.bundle import Bundle, load_bundle
from facepipe.runtime import RuntimeSpec, cpu_engine, open_session

pytest.importorskip("openvino", reason="OpenVINO is not installed")

SHAPES = {
    "mobilefacenet": (5, 112, 112, 3),
    "mtcnn-pnet": (1, 41, 57, 3),
    "mtcnn-rnet": (7, 24, 24, 3),
    "mtcnn-onet": (4, 48, 48, 3),
    "antispoof": (2, 256, 256, 3),
    "blazeface": (3, 128, 128, 3),
}


def bundle_or_skip(models_dir: Path, name: str) -> Bundle:
    if not (models_dir / name / "1").is_dir():
        pytest.skip(f"bundle {name} is not installed in {models_dir}")
    return load_bundle(models_dir / name / "1")


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_matches_onnxruntime(models_dir: Path, name: str) -> None:
    bundle = bundle_or_skip(models_dir, name)
    ort = open_session(bundle, RuntimeSpec(engine="onnxruntime"))
    ov = open_session(bundle, RuntimeSpec(engine="openvino", precision="fp32"))  # auto may pick bf16
    assert type(ov).__name__ == "OpenVinoSession" and ov.output_names == ort.output_names
    x = np.random.default_rng(2).uniform(-1, 1, SHAPES[name]).astype(np.float32)
    for got, want in zip(ov.run({ov.input_names[0]: x}), ort.run({ort.input_names[0]: x}), strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_batches_past_the_bundles_limit_are_chunked(models_dir: Path) -> None:
    bundle = bundle_or_skip(models_dir, "mobilefacenet")
    ov = open_session(bundle, RuntimeSpec(engine="openvino"))
    ov.max_batch = 4
    x = np.random.default_rng(3).uniform(-1, 1, (10, 112, 112, 3)).astype(np.float32)
    whole = ov.run({ov.input_names[0]: x})[0]
    one_by_one = np.concatenate([ov.run({ov.input_names[0]: x[i : i + 1]})[0] for i in range(10)])
    assert whole.shape[0] == 10
    np.testing.assert_allclose(whole, one_by_one, atol=1e-5)


def test_auto_picks_openvino_only_for_fixed_input_sizes(models_dir: Path) -> None:
    assert cpu_engine(bundle_or_skip(models_dir, "mobilefacenet"), "auto") == "openvino"
    assert cpu_engine(bundle_or_skip(models_dir, "mtcnn-pnet"), "auto") == "onnxruntime"
    assert cpu_engine(bundle_or_skip(models_dir, "mtcnn-pnet"), "openvino") == "openvino"  # as told


def test_bf16_stays_close(models_dir: Path) -> None:
    bundle = bundle_or_skip(models_dir, "mobilefacenet")
    fp32 = open_session(bundle, RuntimeSpec(engine="openvino", precision="fp32"))
    bf16 = open_session(bundle, RuntimeSpec(engine="openvino", precision="bf16"))
    x = np.random.default_rng(4).uniform(-1, 1, (4, 112, 112, 3)).astype(np.float32)
    a, b = fp32.run({"input": x})[0], bf16.run({"input": x})[0]
    cos = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99  # bf16 where the CPU has it, fp32 elsewhere
