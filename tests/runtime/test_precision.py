"""``precision: auto``: bf16 only where the CPU lists BF16 natively and the bundle's golden outputs hold
at cosine >= 0.999 under bf16; fp32 otherwise. The choice logic takes the capability list, so both
answers run here whatever this CPU has; the real decision runs on the real bundle."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from facepipe.models.bundle import load_bundle
from facepipe.runtime import RuntimeSpec, open_session, pinned, precision_of
from facepipe.runtime.precision import BF16_MIN_COSINE, choose, min_cosine, resolve

NATIVE = ["BF16", "WINOGRAD", "FP32", "INT8", "BIN", "EXPORT_IMPORT"]
NOT_NATIVE = ["WINOGRAD", "FP32", "INT8", "BIN", "EXPORT_IMPORT"]


def test_native_bf16_and_golden_held_gives_bf16() -> None:
    c = choose(NATIVE, lambda: 0.99975)
    assert (c.precision, c.requested, c.cosine) == ("bf16", "auto", 0.99975)
    assert c.parameters()["precision"] == "bf16"
    assert c.parameters()["precision_golden_cosine"] == "0.999750"


def test_no_native_bf16_gives_fp32_without_trying_bf16() -> None:
    def never() -> float:
        raise AssertionError("the bf16 golden check must not run where bf16 is not native")

    c = choose(NOT_NATIVE, never)
    assert c.precision == "fp32" and "lacks native bf16" in c.reason and c.cosine is None


@pytest.mark.parametrize("cosine", [BF16_MIN_COSINE - 1e-4, 0.5, float("nan"), float("-inf")])
def test_golden_below_the_bound_gives_fp32(cosine: float) -> None:
    c = choose(NATIVE, lambda: cosine)
    assert c.precision == "fp32" and "below" in c.reason


def test_min_cosine_is_the_worst_sample_of_any_output() -> None:
    a = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    b = np.array([[1.0, 0.0], [1.0, 1.0]], dtype=np.float32)  # second row at 45 degrees
    assert min_cosine([a, a], [a, a]) == 1.0
    assert min_cosine([a, a], [a, b]) == pytest.approx(np.sqrt(0.5))
    assert min_cosine([np.zeros((1, 3))], [np.zeros((1, 3))]) == 1.0  # exactly equal, no direction
    assert min_cosine([a], [a[:1]]) == float("-inf")  # shapes differ: never held


def test_configured_precisions_and_other_engines_are_left_alone(models_dir: Path) -> None:
    bundle = load_bundle(models_dir / "mobilefacenet" / "1")
    assert resolve(bundle, "fp32", "openvino").precision == "fp32"
    assert resolve(bundle, "bf16", "openvino").reason == "set in config"
    assert resolve(bundle, "auto", "onnxruntime").precision == "fp32"
    assert resolve(bundle, "auto", "torch").precision == "fp32"


def test_auto_on_this_cpu(models_dir: Path) -> None:
    pytest.importorskip("openvino")
    from facepipe.runtime.openvino import capabilities

    bundle = load_bundle(models_dir / "mobilefacenet" / "1")
    spec = RuntimeSpec(engine="openvino")  # precision: auto, the default
    choice = precision_of(bundle, spec)
    assert choice.precision == ("bf16" if "BF16" in capabilities() else "fp32")
    if choice.cosine is not None:
        assert choice.cosine >= BF16_MIN_COSINE
    assert pinned(bundle, spec).precision == choice.precision
    assert precision_of(bundle, spec) is choice  # decided once per bundle file
    session = open_session(bundle, spec)
    import openvino as ov

    hint = session.compiled.get_property("INFERENCE_PRECISION_HINT")
    assert hint == (ov.Type.bf16 if choice.precision == "bf16" else ov.Type.f32)


def test_auto_keeps_fp32_for_a_bundle_whose_golden_bf16_misses(models_dir: Path, tmp_path: Path) -> None:
    """Golden outputs that bf16 cannot reach (a sign flipped in one output, as a model whose answers
    bf16 would change): auto must not take bf16, native or not."""
    pytest.importorskip("openvino")
    copy = tmp_path / "mobilefacenet"
    shutil.copytree((models_dir / "mobilefacenet" / "1").resolve(), copy)
    golden = dict(np.load(copy / "golden.npz"))
    golden["output_1_0"] = golden["output_1_0"] * np.where(np.arange(192) % 2, 1, -1).astype(np.float32)
    np.savez(copy / "golden.npz", **golden)
    choice = precision_of(load_bundle(copy), RuntimeSpec(engine="openvino"))
    assert choice.precision == "fp32"
