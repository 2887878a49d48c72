"""The face API over gRPC (facepipe.v1.Face) against a real server: the same documents as HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from facepipe.protos import face_service_pb2 as pb
from facepipe.protos import face_service_pb2_grpc as pb_grpc
from tests.integration.conftest import Running, start_server, stop_server
from tests.integration.test_gallery_api import ADMIN, AUTH, READ, people


@pytest.fixture(scope="module")
def fserver(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_server(models_dir, tmp_path_factory.mktemp("facegrpc"), AUTH)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def stub(fserver: Running) -> Iterator[pb_grpc.FaceStub]:
    with grpc.insecure_channel(fserver.grpc) as channel:
        yield pb_grpc.FaceStub(channel)


def key(k: str) -> list[tuple[str, str]]:
    return [("x-api-key", k)]


def test_detect_matches_http(fserver: Running, stub: pb_grpc.FaceStub, lfw_dir: Path) -> None:
    image = next(iter(people(lfw_dir, 1, 1).values()))[0].read_bytes()
    reply = stub.Detect(pb.FaceRequest(images=[image], params={"max_faces": "1"}), timeout=60)
    over_grpc = json.loads(reply.json)
    over_http = httpx.post(fserver.url + "/v1/detect?max_faces=1", files={"a": image}, timeout=60).json()
    assert over_grpc == over_http and len(over_grpc["results"][0]["faces"]) == 1


def test_gallery_over_grpc(stub: pb_grpc.FaceStub, lfw_dir: Path) -> None:
    ((name, paths),) = people(lfw_dir, 1, 2).items()
    body = json.dumps({"id": "g-" + name, "name": name, "metadata": {"via": "grpc"}})
    created = json.loads(stub.SubjectsCreate(pb.FaceRequest(json=body), metadata=key(ADMIN), timeout=30).json)
    assert created["metadata"] == {"via": "grpc"}
    enrol = pb.FaceRequest(images=[paths[0].read_bytes()], subject="g-" + name)
    faces = json.loads(stub.FacesEnrol(enrol, metadata=key(ADMIN), timeout=60).json)["faces"]
    crop = stub.FacesCrop(pb.FaceRequest(face=faces[0]["id"]), metadata=key(READ), timeout=30)
    assert crop.media_type == "image/png" and crop.data[:4] == b"\x89PNG"
    found = json.loads(
        stub.Identify(pb.FaceRequest(images=[paths[1].read_bytes()]), metadata=key(READ), timeout=60).json
    )
    assert found["results"][0]["faces"][0]["matches"][0]["subject"] == "g-" + name


@pytest.mark.parametrize(
    ("method", "request_", "meta", "code", "text"),
    [
        ("Detect", pb.FaceRequest(images=[b"\xff\xd8\xff\xe0 broken"]), [], "INVALID_ARGUMENT", "image[0]"),
        ("Detect", pb.FaceRequest(json="{nope"), [], "INVALID_ARGUMENT", "json"),
        ("SubjectsCreate", pb.FaceRequest(json='{"name": "x"}'), [], "UNAUTHENTICATED", "missing API key"),
        ("SubjectsCreate", pb.FaceRequest(json='{"name": "x"}'), key(READ), "PERMISSION_DENIED", "read-only"),
        ("SubjectsGet", pb.FaceRequest(subject="nobody"), key(READ), "NOT_FOUND", "nobody"),
        ("FacesGet", pb.FaceRequest(face=999999), key(READ), "NOT_FOUND", "999999"),
    ],
)
def test_errors_are_grpc_statuses(
    stub: pb_grpc.FaceStub, method: str, request_: pb.FaceRequest, meta: list, code: str, text: str
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        getattr(stub, method)(request_, metadata=meta, timeout=30)
    assert info.value.code() == getattr(grpc.StatusCode, code)
    assert text in info.value.details()
