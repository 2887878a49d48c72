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
    landmarks = dlib_models / "shape_predictor_5_face_landmarks.dat"
    install_dlib_embedder(dlib_models / EMBEDDER, repo, m.name, source, landmarks, m.landmarks)
    for name in ("blazeface", "mobilefacenet"):
        shutil.copytree(models_dir / name, repo / name)
    extra = {
        "face": {"pack": "clean"},  # the default detector, MTCNN, is refused: BlazeFace stands in
        "gallery": {"enabled": False},
        # fp32 pinned: the parity asked for is the conversion's (precision: auto would serve bf16 here)
        "op": {
            "ArcFace": {
                "concurrency": 1,
                "local_service_conf": {"model_config": "dlib-resnet", "precision": "fp32"},
            },
            "dlib-resnet": {"local_service_conf": {"precision": "fp32"}},
        },
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


def test_v1_runs_the_clean_chain(clean_server: Running, lfw_dir: Path) -> None:
    """/v1 on the clean pack: BlazeFace -> dlib's landmarks -> dlib's chip -> dlib-resnet, and
    /v1/verify with the embedder's own threshold."""

    def b64(name: str) -> str:
        person = name.rsplit("_", 1)[0]
        return base64.b64encode((lfw_dir / "images" / person / f"{name}.jpg").read_bytes()).decode()

    def verify(a: str, b: str) -> dict:
        r = httpx.post(clean_server.url + "/v1/verify", json={"images": [b64(a), b64(b)]}, timeout=60)
        assert r.status_code == 200, r.text
        return dict(r.json())

    same = verify("Aaron_Sorkin_0001", "Aaron_Sorkin_0002")
    other = verify("Aaron_Sorkin_0001", "Abdoulaye_Wade_0001")
    assert same["model"]["name"] == "dlib-resnet" and same["threshold"] == 0.91
    assert same["match"] and not other["match"]
    assert same["similarity"] > 0.91 > other["similarity"]
    emb = httpx.post(clean_server.url + "/v1/embed", json={"images": [b64("Aaron_Sorkin_0001")]}, timeout=60)
    assert len(emb.json()["results"][0]["faces"][0]["embedding"]) == 128
