"""``engine: torch`` in config runs the ArcFace service on PyTorch: the same embeddings as
onnxruntime through the real server (CPU here; device_type 1 selects CUDA on a GPU machine)."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from tests.integration.conftest import Running, seed_embedding, start_server, stop_server

pytest.importorskip("torch", reason="PyTorch is not installed (pip install 'facepipe[gpu]')")


def test_torch_engine_matches_onnxruntime(
    server: Running, models_dir: Path, lfw_dir: Path, tmp_path: Path
) -> None:
    conf = {"local_service_conf": {"engine": "torch"}, "concurrency": 1, "batch_size": 8}
    run = start_server(models_dir, tmp_path, {"op": {"ArcFace": conf}})
    try:
        for path in sorted((lfw_dir / "images").glob("*/*.jpg"))[:5]:
            img = base64.b64encode(path.read_bytes()).decode()
            assert np.abs(seed_embedding(run.url, img) - seed_embedding(server.url, img)).max() <= 1e-4
    finally:
        stop_server(run)
