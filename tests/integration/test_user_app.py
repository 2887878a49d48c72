"""``facepipe serve --app``: the seed's ArcFace deployment written on the public pipeline API
(examples/web_service.py with examples/config.yml) served over every edge."""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import yaml

from tests.integration.conftest import Running, free_port, launch, stop_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def app_server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The example as shipped: its config.yml, only ports and the tracer's folder and interval moved."""
    tmp = tmp_path_factory.mktemp("app")
    cfg = yaml.safe_load((ROOT / "examples" / "config.yml").read_text())
    cfg |= {"http_port": free_port(), "rpc_port": free_port(), "log_dir": str(tmp / "logs")}
    cfg["dag"]["tracer"]["interval_s"] = 0.5
    (tmp / "config.yml").write_text(yaml.safe_dump(cfg))
    args = [
        "--app",
        "examples.web_service:app",
        "--config",
        str(tmp / "config.yml"),
        "--models",
        str(models_dir),
    ]
    running = launch(args, tmp, cfg, ready_s=120, cwd=ROOT)
    yield running
    assert stop_server(running) == 0


def run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args], check=False, capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_seed_http_and_rpc_clients_and_kserve_get_the_same_embeddings(
    app_server: Running, lfw_dir: Path, tmp_path: Path
) -> None:
    faces = sorted((lfw_dir / "images").glob("*/*.jpg"))[:4]
    for p in faces:
        shutil.copy(p, tmp_path / p.name)
    http = run("examples/http_client.py", str(tmp_path), "--url", app_server.url)
    rpc = run("examples/rpc_client.py", str(tmp_path), "--target", app_server.grpc)
    assert "4 images in" in http and "192-d" in http
    assert "4 images in" in rpc and "norm 1.0000" in rpc
    body = {
        "inputs": [
            {
                "name": "image",
                "shape": [2],
                "datatype": "BYTES",
                "data": [base64.b64encode(p.read_bytes()).decode() for p in faces[:2]],
            }
        ]
    }
    r = httpx.post(app_server.url + "/v2/models/ArcFace/infer", json=body, timeout=60).json()
    out = r["outputs"][0]
    assert (out["name"], out["shape"], out["datatype"]) == ("out", [2, 192], "FP32")
    mine = np.asarray(out["data"], np.float32).reshape(2, 192)
    # the built-in ArcFace path (still behind /v1/embed?aligned=true) embeds the same crop alike
    builtin = httpx.post(
        app_server.url + "/v1/embed?aligned=true",
        content=faces[0].read_bytes(),
        headers={"content-type": "image/jpeg"},
        timeout=60,
    ).json()
    ref = np.asarray(builtin["results"][0]["embedding"], np.float32)
    assert float(mine[0] @ ref) > 0.999


def test_the_seed_way_python_web_service_py(
    models_dir: Path, lfw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python web_service.py`` beside its config.yml (a copy, on free ports) serves the same."""
    shutil.copy(ROOT / "examples" / "web_service.py", tmp_path / "web_service.py")
    cfg = yaml.safe_load((ROOT / "examples" / "config.yml").read_text())
    cfg |= {"http_port": free_port(), "rpc_port": free_port(), "log_dir": str(tmp_path / "logs")}
    (tmp_path / "config.yml").write_text(yaml.safe_dump(cfg))
    monkeypatch.setenv("FACEPIPE_MODELS", str(models_dir.resolve()))  # the script runs elsewhere
    script = [str(tmp_path / "web_service.py")]
    running = launch(script, tmp_path, cfg, ready_s=120, cwd=tmp_path, script=True)
    try:
        face = next((lfw_dir / "images").glob("*/*.jpg")).read_bytes()
        body = {"key": ["image"], "value": [base64.b64encode(face).decode()]}
        r = httpx.post(running.url + "/ArcFace/prediction?format=json", json=body, timeout=30).json()
        assert r["err_no"] == 0 and np.asarray(r["value"][0]).shape == (1, 192)
    finally:
        assert stop_server(running) == 0


def test_the_app_is_traced_metered_and_versioned(app_server: Running, lfw_dir: Path) -> None:
    face = next((lfw_dir / "images").glob("*/*.jpg")).read_bytes()
    body = {"key": ["image"], "value": [base64.b64encode(face).decode()]}
    assert httpx.post(app_server.url + "/ArcFace/prediction", json=body, timeout=30).json()["err_no"] == 0
    bad = {"key": ["image"], "value": [base64.b64encode(b"not an image").decode()]}
    failed = httpx.post(app_server.url + "/ArcFace/prediction", json=bad, timeout=30).json()
    assert failed["err_no"] == 5000 and "not a decodable image" in failed["err_msg"]
    meta = httpx.get(app_server.url + "/v2/models/ArcFace").json()
    assert meta["platform"] == "facepipe_dag" and meta["versions"] == ["1"]
    metrics = httpx.get(app_server.url + "/metrics").text
    assert 'facepipe_stage_items_total{pipeline="ArcFace",stage="ArcFace"}' in metrics
    assert metrics.count('facepipe_stage_items_total{pipeline="ArcFace",') == 1  # one series, the app's
    assert 'pipeline="ArcFace-builtin"' in metrics  # the built-in, kept for /v1/embed?aligned=true
    time.sleep(1.2)
    tracer = (app_server.log_dir / "pipeline.tracer").read_text()
    assert "Op(ArcFace):" in tracer and "DAGExecutor(ArcFace):" in tracer
    assert "DAGExecutor(ArcFace-builtin):" in tracer


@pytest.fixture(scope="module")
def custom_server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("custom_op")
    cfg = yaml.safe_load((ROOT / "examples" / "custom_op" / "config.yml").read_text())
    cfg |= {"http_port": free_port(), "rpc_port": free_port(), "log_dir": str(tmp / "logs")}
    (tmp / "config.yml").write_text(yaml.safe_dump(cfg))
    app = "examples.custom_op.sharpness:app"
    args = ["--app", app, "--config", str(tmp / "config.yml"), "--models", str(models_dir)]
    running = launch(args, tmp, cfg, ready_s=120, cwd=ROOT)
    yield running
    assert stop_server(running) == 0


def test_a_user_face_op_appears_in_v1_detect(custom_server: Running, lfw_dir: Path) -> None:
    path = lfw_dir / "images" / "Aaron_Sorkin" / "Aaron_Sorkin_0001.jpg"
    sharp = path.read_bytes()
    img = cv2.imdecode(np.frombuffer(sharp, np.uint8), cv2.IMREAD_COLOR)
    blurred = cv2.imencode(".png", cv2.GaussianBlur(img, (0, 0), 2.5))[1].tobytes()
    files = [("file", ("sharp.jpg", sharp, "image/jpeg")), ("file", ("blurred.png", blurred, "image/png"))]
    r = httpx.post(custom_server.url + "/v1/detect?liveness=true", files=files, timeout=60)
    assert r.status_code == 200, r.text
    faces = [res["faces"][0] for res in r.json()["results"]]
    scores = [f["extra"]["sharpness"] for f in faces]
    assert all(isinstance(s, float) and s > 0 for s in scores)
    assert scores[1] < scores[0] / 2  # the blurred photo's face is far less sharp
    assert all("liveness" in f for f in faces)  # the built-in branches still joined alongside
    metrics = httpx.get(custom_server.url + "/metrics").text
    assert 'stage="sharpness"' in metrics
