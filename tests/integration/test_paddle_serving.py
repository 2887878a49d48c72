"""The seed's Paddle step for real: a MobileFaceNet-class network built and saved by Paddle, both as an
inference model and in the Paddle Serving layout, converted by ``facepipe convert``, served, and
compared with Paddle Inference's own embeddings of real (aligned LFW) faces."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from facepipe.face.align import align
from facepipe.models.bundle import Preprocess
from tests.integration.conftest import Running, seed_embedding, start_server, stop_server

ROOT = Path(__file__).resolve().parents[2]
N_FACES = 8


@dataclass
class PaddleRepo:
    repo: Path
    faces: np.ndarray  # model_input(crops)
    crops: list[np.ndarray]  # aligned 112x112 RGB uint8
    work: Path


def aligned_faces(lfw_dir: Path, landmarks: dict[str, np.ndarray], n: int) -> list[np.ndarray]:
    """The first ``n`` LFW images with reference landmarks, aligned to the ArcFace 112x112 template (RGB)."""
    out = []
    for file in sorted(landmarks)[:n]:
        bgr = cv2.imread(str(lfw_dir / "images" / file))
        out.append(align(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), landmarks[file]))
    return out


def model_input(faces: list[np.ndarray]) -> np.ndarray:
    """N x 3 x 112 x 112 float32, RGB, (x - 127.5) / 128: what the seed's preprocess feeds the model."""
    pre = Preprocess(color="RGB", mean=[127.5] * 3, std=[128.0] * 3)
    return np.ascontiguousarray(np.stack([pre.normalize(f).transpose(2, 0, 1) for f in faces]), np.float32)


def assert_parity(got: np.ndarray, want: np.ndarray) -> None:
    """max |delta| <= 1e-4 of the output scale, cosine >= 0.99999 for every face."""
    got, want = got.astype(np.float64), want.astype(np.float64)
    scale = float(np.abs(want).max())
    assert scale > 0.05  # a live network (BatchNorm statistics set from the faces), not a near-zero output
    assert float(np.abs(got - want).max()) <= 1e-4 * scale
    cosine = (got * want).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    print(f"max |d| {np.abs(got - want).max():.2e} (scale {scale:.3f}), min cosine {cosine.min():.9f}")
    assert float(cosine.min()) >= 0.99999


def _run(cmd: list[str], env: dict[str, str] | None = None) -> None:
    done = subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{cmd[2:4]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"


@pytest.fixture(scope="module")
def paddle_repo(
    models_dir: Path,
    lfw_dir: Path,
    lfw_landmarks: dict[str, np.ndarray],
    tmp_path_factory: pytest.TempPathFactory,
) -> PaddleRepo:
    work = tmp_path_factory.mktemp("paddle")
    crops = aligned_faces(lfw_dir, lfw_landmarks, N_FACES)
    faces = model_input(crops)
    np.save(work / "faces.npy", faces)
    _run(
        [
            sys.executable,
            "-m",
            "tests.models.convert.paddle_mobilefacenet",
            str(work),
            str(work / "faces.npy"),
        ],
        {**os.environ, "FLAGS_enable_pir_api": "0"},
    )
    repo = work / "repo"
    repo.mkdir()
    for d in models_dir.iterdir():
        if d.is_dir() and not d.name.startswith("."):
            (repo / d.name).symlink_to(d.resolve())
    # the inference model with the layout given, the serving layout with the default (auto: from the shape)
    for layout, args in (("inference", ["--layout", "NCHW"]), ("serving", [])):
        convert = [sys.executable, "-m", "facepipe.cli", "convert", str(work / layout)]
        _run([*convert, "--name", f"paddle-{layout}", *args, "--models", str(repo)])
    return PaddleRepo(repo, faces, crops, work)


@pytest.fixture(scope="module")
def paddle_server(paddle_repo: PaddleRepo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    # the seed's ArcFace service on the converted serving-layout model, as the seed's config.yml would name it
    # fp32 pinned: the parity asked for is the conversion's (precision: auto would serve bf16 here)
    fp32 = {"precision": "fp32"}
    arcface = {
        "concurrency": 1,
        "batch_size": 8,
        "local_service_conf": {"model_config": "paddle-serving", **fp32},
    }
    ops = {"ArcFace": arcface} | {
        f"paddle-{k}": {"local_service_conf": fp32} for k in ("inference", "serving")
    }
    running = start_server(paddle_repo.repo, tmp_path_factory.mktemp("paddle-server"), {"op": ops})
    yield running
    stop_server(running)


def test_serving_layout_is_the_seeds(paddle_repo: PaddleRepo) -> None:
    server = paddle_repo.work / "serving" / "serving_server"
    names = {p.name for p in server.iterdir()}
    assert {
        "__model__",
        "__params__",
        "serving_server_conf.prototxt",
        "serving_server_conf.stream.prototxt",
    } <= names
    assert (paddle_repo.work / "serving" / "serving_client" / "serving_client_conf.prototxt").is_file()


@pytest.mark.parametrize(
    ("layout", "feed", "fetch"),
    [("inference", "x", "flatten_0.tmp_0"), ("serving", "image", "embedding")],
)
def test_bundle_names_and_parity_record(paddle_repo: PaddleRepo, layout: str, feed: str, fetch: str) -> None:
    """Inference models keep Paddle's variable names; the serving layout takes the prototxt aliases."""
    manifest = json.loads((paddle_repo.repo / f"paddle-{layout}" / "1" / "bundle.json").read_text())
    assert [i["name"] for i in manifest["inputs"]] == [feed]
    assert manifest["inputs"][0]["shape"] == [-1, 3, 112, 112] and manifest["inputs"][0]["layout"] == "NCHW"
    assert [o["name"] for o in manifest["outputs"]] == [fetch] and manifest["embedding_dim"] == 128
    assert manifest["source"]["package"] == "paddle"
    assert manifest["parity"]["ok"] and manifest["parity"]["reference"].startswith("paddle.inference 3.")


@pytest.mark.parametrize(
    ("layout", "feed", "fetch"),
    [("inference", "x", "flatten_0.tmp_0"), ("serving", "image", "embedding")],
)
def test_served_embeddings_match_paddle_on_real_faces(
    paddle_repo: PaddleRepo, paddle_server: Running, layout: str, feed: str, fetch: str
) -> None:
    faces = paddle_repo.faces
    body = {
        "inputs": [
            {"name": feed, "shape": list(faces.shape), "datatype": "FP32", "data": faces.ravel().tolist()}
        ]
    }
    r = httpx.post(f"{paddle_server.url}/v2/models/paddle-{layout}/infer", json=body, timeout=60)
    assert r.status_code == 200, r.text
    (out,) = r.json()["outputs"]
    assert out["name"] == fetch and out["shape"] == [N_FACES, 128]
    want = np.load(paddle_repo.work / f"paddle_{layout}.npy")
    assert_parity(np.asarray(out["data"], np.float64).reshape(N_FACES, 128), want)
    # and the faces are told apart: a network that maps everything to one point would pass the above
    own = want / np.linalg.norm(want, axis=1, keepdims=True)
    assert float((own @ own.T)[~np.eye(N_FACES, dtype=bool)].max()) < 0.999


def test_seed_arcface_service_on_the_paddle_model(paddle_repo: PaddleRepo, paddle_server: Running) -> None:
    """The seed's own request (a base64 face crop to ``/ArcFace/prediction``) answered by the converted
    Paddle Serving model: the seed's preprocess in facepipe, then the model, equal to Paddle's output."""
    got = []
    for crop in paddle_repo.crops:
        ok, png = cv2.imencode(".png", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))  # lossless: the same pixels
        assert ok
        got.append(seed_embedding(paddle_server.url, base64.b64encode(png.tobytes()).decode()))
    want = np.load(paddle_repo.work / "paddle_serving.npy")
    assert_parity(
        np.stack(got), want / np.linalg.norm(want, axis=1, keepdims=True)
    )  # the seed's is unit length
