"""The photo path's precision: ``auto`` resolves per bundle behind MTCNN, and is fp32 behind BlazeFace
(bf16 there, in the detector or the embedder, lost more lfw-dev accuracy than allowed)."""

from __future__ import annotations

from pathlib import Path

from facepipe.config import parse_config
from facepipe.face.pipelines import embed_spec, path_spec
from facepipe.models.bundle import load_bundle
from facepipe.runtime import RuntimeSpec, precision_of


def test_embed_precision_by_detector(models_dir: Path) -> None:
    bundle = load_bundle(models_dir / "mobilefacenet" / "1")
    config = parse_config({})  # precision: auto
    chosen = precision_of(bundle, RuntimeSpec(threads=2)).precision
    assert embed_spec(config, bundle, "mtcnn").precision == chosen
    assert embed_spec(config, bundle, "blazeface").precision == "fp32"
    forced = parse_config({"op": {"ArcFace": {"local_service_conf": {"precision": "bf16"}}}})
    assert embed_spec(forced, bundle, "blazeface").precision == "bf16"  # an explicit choice is kept


def test_detector_precision_by_detector() -> None:
    config = parse_config({})
    assert path_spec(config, "detect", "mtcnn").precision == "auto"  # resolved per net on open
    assert path_spec(config, "detect", "blazeface").precision == "fp32"
