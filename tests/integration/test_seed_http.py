"""The seed pipeline protocol, as the seed's own client sends it, against a real server."""

from __future__ import annotations

import ast
import base64
import json
import re
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.integration.conftest import Running

FACE = "Aaron_Sorkin/Aaron_Sorkin_0001.jpg"


@pytest.fixture(scope="module")
def face_b64(lfw_dir: Path) -> str:
    return base64.b64encode((lfw_dir / "images" / FACE).read_bytes()).decode()


def seed_client_call(url: str, image_b64: str) -> dict:
    """Exactly what the seed's pipeline_http_client does."""
    data = {"key": ["image"], "value": [image_b64], "logid": 1}
    return httpx.post(url + "/ArcFace/prediction", content=json.dumps(data), timeout=30).json()


def parse_numpy_repr(text: str) -> np.ndarray:
    inner = re.sub(r"^array\(|,\s*dtype=float32\)$", "", text.strip())
    return np.array(ast.literal_eval(inner), dtype=np.float32)


def test_seed_client_unchanged(server: Running, face_b64: str) -> None:
    resp = seed_client_call(server.url, face_b64)
    assert resp["err_no"] == 0 and resp["err_msg"] == "" and resp["key"] == ["out"] and resp["tensors"] == []
    assert resp["value"][0].startswith("array([[") and resp["value"][0].endswith("dtype=float32)")
    emb = parse_numpy_repr(resp["value"][0])
    assert emb.shape == (1, 192)
    assert abs(float(np.linalg.norm(emb)) - 1.0) < 1e-4


def test_json_numbers_option_and_profile(server: Running, face_b64: str) -> None:
    body = {"key": ["image", "pipeline.profile"], "value": [face_b64, "1"], "logid": 9}
    resp = httpx.post(server.url + "/ArcFace/prediction?format=json", json=body, timeout=30).json()
    assert resp["err_no"] == 0 and resp["logid"] == 9
    emb = np.array(resp["value"][0], dtype=np.float32)
    assert emb.shape == (1, 192)
    same = parse_numpy_repr(seed_client_call(server.url, face_b64)["value"][0])
    np.testing.assert_allclose(emb, same, atol=1e-6)
    profile = json.loads(resp["value"][resp["key"].index("pipeline.profile")])
    assert [p["op"] for p in profile] == ["ArcFace"]  # decode runs inside the ArcFace op, like the seed


def test_any_method_name_is_accepted(server: Running, face_b64: str) -> None:
    resp = httpx.post(server.url + "/ArcFace/whatever", json={"key": ["image"], "value": [face_b64]}).json()
    assert resp["err_no"] == 0


@pytest.mark.parametrize(
    ("path", "body", "err_no", "message"),
    [
        ("/ArcFace/prediction", b"{not json", 5000, "not valid JSON"),
        ("/ArcFace/prediction", b'{"key": ["foo"], "value": ["x"]}', 5000, "missing key"),
        ("/ArcFace/prediction", b'{"key": ["image"], "value": []}', 5000, "same length"),
        ("/ArcFace/prediction", b'{"key": ["image"], "value": ["aGVsbG8="]}', 5000, "not a JPEG, PNG"),
        (
            "/ArcFace/prediction",
            b'{"key": ["image"], "value": ["%%%"]}',
            5000,
            "neither image bytes nor valid base64",
        ),
    ],
)
def test_bad_input_gets_seed_error(
    server: Running, path: str, body: bytes, err_no: int, message: str
) -> None:
    resp = httpx.post(server.url + path, content=body, timeout=30)
    assert resp.status_code == 200
    assert resp.json()["err_no"] == err_no and message in resp.json()["err_msg"]


def test_corrupt_jpeg(server: Running, lfw_dir: Path) -> None:
    data = (lfw_dir / "images" / FACE).read_bytes()
    broken = base64.b64encode(data[:600]).decode()
    resp = httpx.post(server.url + "/ArcFace/prediction", json={"key": ["image"], "value": [broken]}).json()
    assert resp["err_no"] == 5000 and "corrupt" in resp["err_msg"]


def test_oversized_body(server: Running) -> None:
    resp = httpx.post(server.url + "/ArcFace/prediction", content=b"x" * 6_100_000, timeout=30)
    assert resp.json()["err_no"] == 5000 and "exceeds the limit" in resp.json()["err_msg"]


def test_server_keeps_serving_after_errors(server: Running, face_b64: str) -> None:
    for _ in range(5):
        httpx.post(server.url + "/ArcFace/prediction", content=b"garbage")
    assert seed_client_call(server.url, face_b64)["err_no"] == 0
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}


def test_tracer_log_in_seed_layout(server: Running, face_b64: str) -> None:
    import time

    seed_client_call(server.url, face_b64)
    path = server.log_dir / "pipeline.tracer"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "Query count" not in (path.read_text() if path.exists() else ""):
        time.sleep(0.2)
    text = path.read_text()
    for needle in ("TRACER", "Op(ArcFace):", "\tmidp[", "\tidle[", "\tbatch_size[", "DAGExecutor(ArcFace):"):
        assert needle in text
    for needle in ("\tQPS[", "\t\t.99[", "size["):
        assert needle in text


def test_metrics(server: Running, face_b64: str) -> None:
    seed_client_call(server.url, face_b64)
    text = httpx.get(server.url + "/metrics").text
    assert 'facepipe_requests_total{endpoint="seed:ArcFace",status="ok"}' in text
    buckets = [line for line in text.splitlines() if line.startswith("facepipe_stage_batch_size_bucket")]
    assert any('stage="ArcFace"' in line and not line.endswith(" 0.0") for line in buckets)
    assert "facepipe_request_seconds_bucket" in text and "facepipe_in_flight" in text
