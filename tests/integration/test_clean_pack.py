"""A real server with ``face.pack: clean`` on a repository that holds the clean pack (BlazeFace and
dlib-resnet, converted here from the real .dat) beside the research-only MobileFaceNet."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from facepipe.models.bundle import Source
from facepipe.models.convert.dlib import install_dlib_embedder, read_dlib
from facepipe.models.packs import DLIB
from tests.integration.conftest import Running, seed_embedding, start_server, stop_server

EMBEDDER = "dlib_face_recognition_resnet_model_v1.dat"


@pytest.fixture(scope="module")
def clean_server(
    models_dir: Path, dlib_models: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    repo = tmp_path_factory.mktemp("clean-models")
    m = DLIB.models[0]
    source = Source(DLIB.requirement, m.member, m.sha256, m.licence, m.commercial, m.note)
    install_dlib_embedder(dlib_models / EMBEDDER, repo, m.name, source)
    for name in ("blazeface", "mobilefacenet"):
        shutil.copytree(models_dir / name, repo / name)
    extra = {
        "face": {"pack": "clean"},
        "gallery": {"enabled": False},
        "op": {"ArcFace": {"concurrency": 1, "local_service_conf": {"model_config": "dlib-resnet"}}},
    }
    running = start_server(repo, tmp_path_factory.mktemp("clean-server"), extra)
    yield running
    stop_server(running)


def test_research_only_bundle_is_refused_and_clean_ones_load(clean_server: Running) -> None:
    index = httpx.post(clean_server.url + "/v2/repository/index", json={}).json()
    states = {m["name"]: (m["state"], m.get("reason", "")) for m in index}
    assert states["dlib-resnet"][0] == "READY" and states["blazeface"][0] == "READY"
    assert states["mobilefacenet"][0] == "UNAVAILABLE"
    assert "research-only (MS-Celeb-1M derivative)" in states["mobilefacenet"][1]
    infer = httpx.post(clean_server.url + "/v2/models/mobilefacenet/infer", json={"inputs": []})
    assert infer.status_code >= 400


def test_dlib_embedder_served_matches_dlib(
    clean_server: Running, dlib_models: Path, dlib_faces: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]
) -> None:
    """Over KServe (the tensor) and the seed service (a PNG of the chip): dlib's own descriptor."""
    import dlib

    rec = dlib.face_recognition_model_v1(str(dlib_models / EMBEDDER))
    _, _, _, chip = dlib_faces[0]
    want = np.array(rec.compute_face_descriptor(chip), dtype=np.float64)
    mean = np.array(read_dlib(dlib_models / EMBEDDER).input["avg_rgb"], np.float32)
    x = ((chip.astype(np.float32) - mean) / 256).transpose(2, 0, 1)[None]
    body = {
        "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]
    }
    resp = httpx.post(clean_server.url + "/v2/models/dlib-resnet/infer", json=body, timeout=60)
    assert resp.status_code == 200, resp.text
    got = np.array(resp.json()["outputs"][0]["data"], dtype=np.float64)
    assert got @ want / np.linalg.norm(got) / np.linalg.norm(want) >= 0.99999
    png = cv2.imencode(".png", cv2.cvtColor(chip, cv2.COLOR_RGB2BGR))[1].tobytes()
    seed = seed_embedding(clean_server.url, base64.b64encode(png).decode())
    assert seed @ want / np.linalg.norm(seed) / np.linalg.norm(want) >= 0.99999


def test_v1_is_not_served_for_an_embedder_it_cannot_align_for(clean_server: Running) -> None:
    """dlib-resnet needs dlib's chip, /v1 cuts ArcFace crops: /v1 stays off (no route: the request
    falls through to the seed protocol's catch-all) and the log says why."""
    resp = httpx.post(clean_server.url + "/v1/detect", json={"images": []})
    assert "err_no" in resp.json() and "results" not in resp.json()
    log = (clean_server.log_dir.parent / "server.log").read_text()
    assert "embedder 'dlib-resnet' needs 'dlib-5point-chip' face crops" in log
