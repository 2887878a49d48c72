"""The face REST API (/v1) against a real server on real photos, including every kind of bad input."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from tests.integration.conftest import Running, start_server, stop_server


def png(h: int = 120, w: int = 120, value: int = 128) -> bytes:
    return cv2.imencode(".png", np.full((h, w, 3), value, np.uint8))[1].tobytes()


def test_detect_multipart_several_images(server: Running, photos_dir: Path) -> None:
    files = [("a", (p, (photos_dir / p).read_bytes(), "image/jpeg")) for p in ("img1.jpg", "img2.jpg")]
    r = httpx.post(
        server.url + "/v1/detect", files=[*files, ("b", ("blank.png", png(), "image/png"))], timeout=60
    )
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [len(x["faces"]) >= 1 for x in results] == [True, True, False]  # no face: an empty list
    face = results[0]["faces"][0]
    assert set(face) == {"box", "score", "size", "landmarks", "quality"} and len(face["landmarks"]) == 5
    assert face["score"] > 0.9 and face["size"] > 100


def test_embed_raw_body_json_and_aligned(server: Running, lfw_dir: Path) -> None:
    data = (lfw_dir / "images/Aaron_Sorkin/Aaron_Sorkin_0001.jpg").read_bytes()
    raw = httpx.post(
        server.url + "/v1/embed", content=data, headers={"content-type": "image/jpeg"}, timeout=30
    )
    as_json = httpx.post(
        server.url + "/v1/embed", json={"images": [base64.b64encode(data).decode()]}, timeout=30
    )
    e1 = np.array(raw.json()["results"][0]["faces"][0]["embedding"])
    e2 = np.array(as_json.json()["results"][0]["faces"][0]["embedding"])
    assert e1.shape == (192,) and np.allclose(e1, e2, atol=1e-6) and abs(np.linalg.norm(e1) - 1) < 1e-4
    crop = httpx.post(
        server.url + "/v1/embed?aligned=true", content=data, headers={"content-type": "image/jpeg"}
    )
    assert (
        len(crop.json()["results"][0]["embedding"]) == 192 and raw.json()["model"]["name"] == "mobilefacenet"
    )


def test_verify_images_and_embeddings(server: Running, photos_dir: Path) -> None:
    same = [("a", (photos_dir / "img20.jpg").read_bytes()), ("b", (photos_dir / "img21.jpg").read_bytes())]
    r = httpx.post(server.url + "/v1/verify", files=same, timeout=60).json()
    assert r["match"] is True and r["similarity"] > r["threshold"] and len(r["faces"]) == 2
    a, b = [1.0] + [0.0] * 191, [0.0, 1.0] + [0.0] * 190  # the model's 192 values each
    emb = httpx.post(server.url + "/v1/verify", json={"embeddings": [a, b]}).json()
    assert emb == emb | {"similarity": 0.0, "match": False}
    short = httpx.post(server.url + "/v1/verify", json={"embeddings": [[1, 0, 0], [1, 0, 0]]})
    assert short.status_code == 400 and "have 192" in short.text  # issue 22: was similarity 1.0


def test_liveness_scores(server: Running, photos_dir: Path) -> None:
    r = httpx.post(
        server.url + "/v1/detect?liveness=true",
        content=(photos_dir / "img1.jpg").read_bytes(),
        headers={"content-type": "image/jpeg"},
        timeout=30,
    ).json()
    live = r["results"][0]["faces"][0]["liveness"]
    assert live["score"] >= 0 and isinstance(live["real"], bool)


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "needle"),
    [
        (
            "/v1/detect",
            {"content": b"\xff\xd8\xff\xe0garbage", "headers": {"content-type": "image/jpeg"}},
            400,
            "image[0]",
        ),
        ("/v1/detect", {"content": b"GIF89a....", "headers": {"content-type": "image/gif"}}, 415, "image[0]"),
        ("/v1/detect", {"json": {"images": ["!!"]}}, 400, "image[0]: not valid base64"),
        ("/v1/detect", {"json": {}}, 400, "no image"),
        (
            "/v1/detect",
            {"content": b"{", "headers": {"content-type": "application/json"}},
            400,
            "not valid JSON",
        ),
        (
            "/v1/detect?max_faces=-1",
            {"json": {"images": [base64.b64encode(png()).decode()]}},
            400,
            "max_faces",
        ),
        (
            "/v1/detect?detector=yolo",
            {"json": {"images": [base64.b64encode(png()).decode()]}},
            400,
            "detector",
        ),
        (
            "/v1/detect",
            {"content": b"\xff\xd8\xff" + b"0" * 7_000_000, "headers": {"content-type": "image/jpeg"}},
            413,
            "limit",
        ),
        ("/v1/verify", {"json": {"embeddings": [[1, 0]]}}, 400, "exactly two"),
        ("/v1/verify", {"json": {"embeddings": [[1, 0], [1, 0, 0]]}}, 400, "embeddings have 192"),
        (
            "/v1/verify",
            {"json": {"images": [base64.b64encode(png()).decode()] * 2}},
            400,
            "image[0]: no face",
        ),
    ],
)
def test_bad_input_is_a_clear_error(
    server: Running, path: str, kwargs: dict, status: int, needle: str
) -> None:
    r = httpx.post(server.url + path, timeout=30, **kwargs)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]["message"]
    assert httpx.get(server.url + "/readyz").status_code == 200


def test_second_image_named_in_error(server: Running, photos_dir: Path) -> None:
    files = [("a", (photos_dir / "img1.jpg").read_bytes()), ("b", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)]
    r = httpx.post(server.url + "/v1/detect", files=files, timeout=30)
    assert r.status_code == 400 and "image[1]" in r.json()["error"]["message"]


@pytest.fixture(scope="module")
def no_liveness_server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("noliveness")
    repo = tmp / "models"
    repo.mkdir()
    for bundle in models_dir.iterdir():
        if bundle.is_dir() and bundle.name not in ("antispoof", ".cache"):
            (repo / bundle.name).symlink_to(bundle.resolve())
    running = start_server(repo, tmp)
    yield running
    stop_server(running)


def test_liveness_without_the_model_says_so(no_liveness_server: Running) -> None:
    body = {"images": [base64.b64encode(png()).decode()], "liveness": True}
    r = httpx.post(no_liveness_server.url + "/v1/detect", json=body, timeout=30)
    assert r.status_code == 400 and "antispoof" in r.json()["error"]["message"]


def test_v1_requests_are_counted_in_metrics(server: Running) -> None:
    text = httpx.get(server.url + "/metrics").text
    assert 'endpoint="v1:detect"' in text


def test_openapi_document_lists_the_face_api(server: Running) -> None:
    doc = httpx.get(server.url + "/openapi.json").json()
    assert doc["openapi"].startswith("3.") and {"/v1/detect", "/v1/embed", "/v1/verify"} <= set(doc["paths"])


def test_blazeface_detector(server: Running, lfw_dir: Path, models_dir: Path) -> None:
    if not (models_dir / "blazeface" / "1").is_dir():
        pytest.skip("the blazeface pack is not installed: run `facepipe models pull blazeface`")
    data = (lfw_dir / "images/Aaron_Sorkin/Aaron_Sorkin_0001.jpg").read_bytes()
    r = httpx.post(server.url + "/v1/embed?detector=blazeface", files={"a": data}, timeout=30)
    assert r.status_code == 200, r.text
    face = r.json()["results"][0]["faces"][0]
    assert len(face["landmarks"]) == 4 and len(face["embedding"]) == 192
    mtcnn = httpx.post(server.url + "/v1/embed", files={"a": data}, timeout=30).json()["results"][0]["faces"][
        0
    ]
    assert float(np.dot(face["embedding"], mtcnn["embedding"])) > 0.8  # the same face, either way
