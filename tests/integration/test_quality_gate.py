"""Quality and liveness gating against a real server, over HTTP and gRPC: every face carries its quality;
``min_quality`` and ``enrol.min_quality`` refuse a blurred real face naming ``sharpness``;
``require_live`` refuses a print-like copy of a real face naming its anti-spoofing score."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import grpc
import httpx
import numpy as np
import pytest

from bench import degrade
from facepipe.protos import face_service_pb2 as pb
from facepipe.protos import face_service_pb2_grpc as pb_grpc
from tests.integration.conftest import Running, private_repository, start_server, stop_server
from tests.integration.test_gallery_api import ADMIN, AUTH, W

SIGNALS = {"score", "sharpness", "yaw", "pitch", "roll", "size", "confidence"}


@pytest.fixture(scope="module")
def qserver(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_server(models_dir, tmp_path_factory.mktemp("quality"), AUTH)
    yield running
    stop_server(running)


def jpeg(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


@pytest.fixture(scope="module")
def faces(photos_dir: Path) -> dict[str, bytes]:
    """A real photo (its face passes both gates), the same blurred, and a print-like copy of it."""
    sharp = (photos_dir / "img2.jpg").read_bytes()
    rgb = cv2.cvtColor(cv2.imread(str(photos_dir / "img2.jpg")), cv2.COLOR_BGR2RGB)
    small = degrade.downscale(rgb, 0.25)  # the face ~100 px, as in an ordinary photo
    return {
        "sharp": sharp,
        "blurred": jpeg(degrade.blur(small, 5.0)),
        "print": jpeg(degrade.print_like(small)),
        "small": jpeg(small),
    }


def post(url: str, path: str, images: list[bytes], params: dict, key: str | None = None) -> httpx.Response:
    files = [(f"f{i}", (f"{i}.jpg", b, "image/jpeg")) for i, b in enumerate(images)]
    headers = {"x-api-key": key} if key else {}
    return httpx.post(url + path, files=files, params=params, headers=headers, timeout=60)


def test_every_face_carries_its_quality(qserver: Running, faces: dict[str, bytes]) -> None:
    (face,) = post(qserver.url, "/v1/detect", [faces["sharp"]], {}).json()["results"][0]["faces"]
    assert set(face["quality"]) == SIGNALS and face["quality"]["score"] > 0.8
    blurred = post(qserver.url, "/v1/detect", [faces["blurred"]], {}).json()["results"][0]["faces"][0]
    assert (
        blurred["quality"]["score"] < 0.4 and blurred["quality"]["sharpness"] < face["quality"]["sharpness"]
    )


def test_verify_refuses_a_face_below_min_quality_naming_the_signal(
    qserver: Running, faces: dict[str, bytes]
) -> None:
    both = [faces["sharp"], faces["blurred"]]
    assert post(qserver.url, "/v1/verify", both, {}).status_code == 200  # no gate unless asked
    r = post(qserver.url, "/v1/verify", both, {"min_quality": 0.4})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "unusable_face" and err["message"].startswith("image[1]: face quality")
    assert "weakest signal: sharpness" in err["message"]


def test_enrol_refuses_low_quality_by_default_and_skips_when_asked(
    qserver: Running, faces: dict[str, bytes]
) -> None:
    httpx.post(qserver.url + "/v1/subjects", json={"id": "q1", "name": "q"}, headers=W, timeout=30)
    r = post(qserver.url, "/v1/subjects/q1/faces", [faces["blurred"]], {}, ADMIN)
    assert r.status_code == 422 and "below min_quality 0.25" in r.json()["error"]["message"]
    r = post(
        qserver.url,
        "/v1/subjects/q1/faces",
        [faces["blurred"], faces["small"]],
        {"on_no_face": "skip"},
        ADMIN,
    )
    doc = r.json()
    assert r.status_code == 201 and [f["image"] for f in doc["faces"]] == [1]
    assert doc["skipped"][0]["image"] == 0 and "sharpness" in doc["skipped"][0]["reason"]
    assert (
        post(qserver.url, "/v1/subjects/q1/faces", [faces["blurred"]], {"min_quality": 0}, ADMIN).status_code
        == 201
    )


def test_identify_marks_refused_faces_and_refuses_when_none_passes(
    qserver: Running, faces: dict[str, bytes]
) -> None:
    ok = post(
        qserver.url, "/v1/identify", [faces["small"], faces["blurred"]], {"min_quality": 0.4}, ADMIN
    ).json()
    good, bad = (r["faces"][0] for r in ok["results"])
    assert "refused" not in good and good["matches"] and bad["matches"] == []
    assert "sharpness" in bad["refused"]
    r = post(qserver.url, "/v1/identify", [faces["blurred"]], {"min_quality": 0.4}, ADMIN)
    assert r.status_code == 422 and "every face was refused" in r.json()["error"]["message"]


def test_require_live_refuses_a_print_like_face_with_its_score(
    qserver: Running, faces: dict[str, bytes]
) -> None:
    live = {"require_live": "true"}
    r = post(qserver.url, "/v1/verify", [faces["sharp"], faces["print"]], live)
    assert r.status_code == 422
    message = r.json()["error"]["message"]
    assert message.startswith("image[1]: require_live: anti-spoofing score") and "spoof_above 0.2" in message
    ok = post(qserver.url, "/v1/verify", [faces["sharp"], faces["sharp"]], live).json()
    assert all(f["liveness"]["real"] for f in ok["faces"])  # liveness ran, and is in the answer


def test_the_same_refusals_over_grpc(qserver: Running, faces: dict[str, bytes]) -> None:
    with grpc.insecure_channel(qserver.grpc) as channel:
        stub = pb_grpc.FaceStub(channel)
        ok = stub.Detect(pb.FaceRequest(images=[faces["sharp"]]), timeout=60)
        assert set(json.loads(ok.json)["results"][0]["faces"][0]["quality"]) == SIGNALS
        for params, text in (
            ({"min_quality": "0.4"}, "weakest signal: sharpness"),
            ({"require_live": "1"}, "require_live"),
        ):
            images = [faces["sharp"], faces["blurred"] if "min_quality" in params else faces["print"]]
            with pytest.raises(grpc.RpcError) as err:
                stub.Verify(pb.FaceRequest(images=images, params=params), timeout=60)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and text in str(err.value.details())


def test_require_live_without_the_liveness_model_stops_the_server(models_dir: Path, tmp_path: Path) -> None:
    """Never a silent pass: with no anti-spoofing model installed, face.require_live stops the start."""
    repo = private_repository(models_dir, tmp_path / "models")
    (repo / "antispoof").unlink()
    with pytest.raises(RuntimeError, match=r"face\.require_live: true, but the anti-spoofing model"):
        start_server(repo, tmp_path, {"face": {"require_live": True}}, ready_s=120)
    (tmp_path / "plain").mkdir()
    running = start_server(repo, tmp_path / "plain", {}, ready_s=120)
    try:  # and a request asking for it is refused, naming the missing model
        r = httpx.post(running.url + "/v1/verify?require_live=true", files={"a": b"x", "b": b"y"}, timeout=60)
        assert r.status_code == 400 and "'antispoof' is not installed" in r.json()["error"]["message"]
    finally:
        stop_server(running)
