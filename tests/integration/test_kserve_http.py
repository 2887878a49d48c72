"""KServe v2 over HTTP, proven with the standard tritonclient package and with raw JSON."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton

from tests.integration.conftest import Running


@pytest.fixture(scope="module")
def client(server: Running) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(f"127.0.0.1:{server.port}")


def test_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    meta = client.get_model_metadata("mobilefacenet")
    assert meta["inputs"][0] == {"name": "input", "datatype": "FP32", "shape": [-1, 112, 112, 3]}
    assert client.is_model_ready("mobilefacenet") and client.is_model_ready("ArcFace")
    states = {m["name"]: m["state"] for m in client.get_model_repository_index()}
    # every installed bundle passed its golden self-test on its runtime (OpenVINO or onnxruntime)
    assert states and all(state == "READY" for state in states.values()), states
    assert states["mobilefacenet"] == "READY"


def test_metadata_reports_the_precision_chosen(client: triton.InferenceServerClient) -> None:
    """``precision: auto`` (the default): bf16 where this CPU runs it natively, fp32 elsewhere; both
    the bundle and the seed service over it say which, with the golden cosine that allowed bf16."""
    from facepipe.runtime.openvino import capabilities

    want = "bf16" if "BF16" in capabilities() else "fp32"
    for name in ("mobilefacenet", "ArcFace"):
        params = client.get_model_metadata(name)["parameters"]
        assert params["precision"] == want and params["precision_requested"] == "auto", params
        if want == "bf16":
            assert float(params["precision_golden_cosine"]) >= 0.999
    onnx_only = client.get_model_metadata("mtcnn-pnet")["parameters"]  # sizes vary: onnxruntime, fp32
    assert onnx_only["precision"] == "fp32" and "onnxruntime" in onnx_only["precision_reason"]


@pytest.mark.parametrize("binary", [True, False])
def test_bundle_infer_binary_and_json(client: triton.InferenceServerClient, binary: bool) -> None:
    x = np.random.default_rng(0).uniform(-1, 1, (3, 112, 112, 3)).astype(np.float32)
    inp = triton.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    out = triton.InferRequestedOutput("embeddings", binary_data=binary)
    emb = client.infer("mobilefacenet", [inp], outputs=[out]).as_numpy("embeddings")
    assert emb.shape == (3, 192)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_arcface_pipeline_with_bytes_tensor(client: triton.InferenceServerClient, lfw_dir: Path) -> None:
    imgs = [p.read_bytes() for p in sorted((lfw_dir / "images" / "Aaron_Sorkin").glob("*.jpg"))[:2]]
    arr = np.array(imgs, dtype=object)
    inp = triton.InferInput("image", [len(imgs)], "BYTES")
    inp.set_data_from_numpy(arr, binary_data=True)
    emb = client.infer("ArcFace", [inp]).as_numpy("embedding")
    assert emb.shape == (2, 192)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{bad json", "not valid JSON"),
        (b'{"inputs": []}', "non-empty 'inputs'"),
        (
            b'{"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}',
            "does not match",
        ),
        (
            b'{"inputs": [{"name": "input", "shape": [1,112,112,3], "datatype": "INT8", "data": []}]}',
            "elements",
        ),
        (b'{"inputs": [{"name": "nope", "shape": [1], "datatype": "FP32", "data": [1]}]}', "takes inputs"),
        (
            b'{"inputs": [{"name": "input", "shape": [1], "datatype": "FP99", "data": [1]}]}',
            "unknown datatype",
        ),
    ],
)
def test_bad_requests_get_400(server: Running, body: bytes, message: str) -> None:
    resp = httpx.post(server.url + "/v2/models/mobilefacenet/infer", content=body)
    assert resp.status_code == 400 and message in resp.json()["error"]


def test_unknown_model_404(server: Running) -> None:
    resp = httpx.post(server.url + "/v2/models/nope/infer", json={"inputs": []})
    assert resp.status_code == 404 and "unknown model" in resp.json()["error"]
    assert httpx.get(server.url + "/v2/models/mobilefacenet/versions/9").status_code == 404


def test_oversized_body_413(server: Running) -> None:
    resp = httpx.post(server.url + "/v2/models/mobilefacenet/infer", content=b"x" * 6_100_000)
    assert resp.status_code == 413
