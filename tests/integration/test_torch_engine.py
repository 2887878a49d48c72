"""``engine: torch`` in config runs the ArcFace service on PyTorch: the same embeddings as an fp32
OpenVINO server (CPU here; device_type 1 selects CUDA on a GPU machine). The default server may run
bf16 (``precision: auto``), so the reference pins fp32."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from tests.integration.conftest import seed_embedding, start_server, stop_server

pytest.importorskip("torch", reason="PyTorch is not installed (pip install 'facepipe[gpu]')")


def test_torch_engine_matches_fp32(models_dir: Path, lfw_dir: Path, tmp_path: Path) -> None:
    conf = {"local_service_conf": {"engine": "torch"}, "concurrency": 1, "batch_size": 8}
    fp32 = {"local_service_conf": {"precision": "fp32"}, "concurrency": 1, "batch_size": 8}
    for sub in ("torch", "fp32"):
        (tmp_path / sub).mkdir()
    run = start_server(models_dir, tmp_path / "torch", {"op": {"ArcFace": conf}})
    ref = start_server(models_dir, tmp_path / "fp32", {"op": {"ArcFace": fp32}})
    try:
        for path in sorted((lfw_dir / "images").glob("*/*.jpg"))[:5]:
            img = base64.b64encode(path.read_bytes()).decode()
            assert np.abs(seed_embedding(run.url, img) - seed_embedding(ref.url, img)).max() <= 1e-4
    finally:
        stop_server(run)
        stop_server(ref)
