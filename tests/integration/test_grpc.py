"""The gRPC edge against a real server: KServe v2 with the standard tritonclient, and the seed RPC."""

from __future__ import annotations

import base64
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from facepipe.protos import pipeline_service_pb2 as seed_pb
from facepipe.protos import pipeline_service_pb2_grpc as seed_grpc
from tests.integration.conftest import Running
from tests.integration.test_seed_http import FACE, parse_numpy_repr, seed_client_call


@pytest.fixture(scope="module")
def client(server: Running) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(server.grpc)


@pytest.fixture(scope="module")
def seed_stub(server: Running) -> seed_grpc.PipelineServiceStub:
    return seed_grpc.PipelineServiceStub(grpc.insecure_channel(server.grpc))


def test_health_metadata_and_index(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert "binary_tensor_data" in client.get_server_metadata().extensions
    meta = client.get_model_metadata("mobilefacenet", as_json=True)
    assert meta["inputs"][0] == {"name": "input", "datatype": "FP32", "shape": ["-1", "112", "112", "3"]}
    assert client.is_model_ready("ArcFace")
    index = client.get_model_repository_index(as_json=True)["models"]
    assert any(m["name"] == "mobilefacenet" and m["state"] == "READY" for m in index)


def test_bundle_infer_matches_http(client: triton.InferenceServerClient, server: Running) -> None:
    x = np.random.default_rng(1).uniform(-1, 1, (2, 112, 112, 3)).astype(np.float32)
    inp = triton.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    emb = client.infer("mobilefacenet", [inp]).as_numpy("embeddings")
    assert emb.shape == (2, 192)
    body = {
        "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]
    }
    via_http = httpx.post(f"{server.url}/v2/models/mobilefacenet/infer", json=body, timeout=30).json()
    np.testing.assert_allclose(emb.ravel(), via_http["outputs"][0]["data"], atol=1e-5)


def test_arcface_pipeline_bytes(client: triton.InferenceServerClient, lfw_dir: Path) -> None:
    imgs = [p.read_bytes() for p in sorted((lfw_dir / "images" / "Aaron_Sorkin").glob("*.jpg"))[:2]]
    inp = triton.InferInput("image", [len(imgs)], "BYTES")
    inp.set_data_from_numpy(np.array(imgs, dtype=object))
    emb = client.infer("ArcFace", [inp]).as_numpy("embedding")
    assert emb.shape == (2, 192)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)


@pytest.mark.parametrize(
    ("model", "shape", "datatype", "status", "needle"),
    [
        ("mobilefacenet", [1, 112, 112, 4], "FP32", "INVALID_ARGUMENT", "shape"),
        ("mobilefacenet", [1, 112, 112, 3], "FP64", "INVALID_ARGUMENT", "datatype"),
        ("nope", [1], "FP32", "NOT_FOUND", "unknown model"),
    ],
)
def test_bad_requests_get_status_codes(
    client: triton.InferenceServerClient,
    model: str,
    shape: list[int],
    datatype: str,
    status: str,
    needle: str,
) -> None:
    dtype = np.float64 if datatype == "FP64" else np.float32
    inp = triton.InferInput("input", shape, datatype)
    inp.set_data_from_numpy(np.zeros(shape, dtype=dtype))
    with pytest.raises(InferenceServerException) as exc:
        client.infer(model, [inp])
    assert exc.value.status() == f"StatusCode.{status}" and needle in exc.value.message()
    assert client.is_server_ready()


def test_undecodable_image_is_invalid_argument(client: triton.InferenceServerClient) -> None:
    inp = triton.InferInput("image", [1], "BYTES")
    inp.set_data_from_numpy(np.array([b"\xff\xd8\xff not a jpeg"], dtype=object))
    with pytest.raises(InferenceServerException) as exc:
        client.infer("ArcFace", [inp])
    assert exc.value.status() == "StatusCode.INVALID_ARGUMENT"


def test_seed_rpc_same_answer_as_http(
    seed_stub: seed_grpc.PipelineServiceStub, server: Running, lfw_dir: Path
) -> None:
    face = base64.b64encode((lfw_dir / "images" / FACE).read_bytes()).decode()
    resp = seed_stub.inference(seed_pb.Request(key=["image"], value=[face], logid=3), timeout=30)
    assert resp.err_no == 0 and list(resp.key) == ["out"]
    via_http = parse_numpy_repr(seed_client_call(server.url, face)["value"][0])
    np.testing.assert_allclose(parse_numpy_repr(resp.value[0]), via_http, atol=1e-6)


@pytest.mark.parametrize(
    ("request_", "err_no"),
    [
        (seed_pb.Request(key=["image"], value=["bm90IGFuIGltYWdl"]), 5000),
        (seed_pb.Request(key=["nothing"], value=["x"]), 5000),
        (seed_pb.Request(key=["image"], value=["x"], name="NoSuchService"), 3002),
    ],
)
def test_seed_rpc_errors_in_err_no(
    seed_stub: seed_grpc.PipelineServiceStub, request_: object, err_no: int
) -> None:
    resp = seed_stub.inference(request_, timeout=30)
    assert resp.err_no == err_no and resp.err_msg
