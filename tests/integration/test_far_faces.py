"""A real server with the full-range BlazeFace as its default detector (``face.detector:
blazeface_full``) and ``face.flip_average: true``: far faces found through /v1 that the short-range
model misses, and embeddings that a mirror image leaves (nearly) unchanged."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from tests.integration.conftest import Running, start_server, stop_server


@pytest.fixture(scope="module")
def far_server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    if not (models_dir / "blazeface-full" / "1").is_dir():
        pytest.skip("the full-range BlazeFace is not installed: run `facepipe models pull blazeface-full`")
    repo = tmp_path_factory.mktemp("far-models")
    for name in ("blazeface", "blazeface-full", "mobilefacenet"):
        shutil.copytree(models_dir / name, repo / name)
    extra = {"face": {"detector": "blazeface_full", "flip_average": True}, "gallery": {"enabled": False}}
    running = start_server(repo, tmp_path_factory.mktemp("far-server"), extra, ready_s=180)
    yield running
    stop_server(running)


def _jpeg(img: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def _faces(url: str, data: bytes, detector: str | None = None) -> list[dict]:
    params = {"detector": detector} if detector else {}
    r = httpx.post(url + "/v1/detect", files={"a": data}, params=params, timeout=60)
    assert r.status_code == 200, r.text
    return list(r.json()["results"][0]["faces"])


def test_far_faces_found_by_default_and_missed_by_short_range(far_server: Running, lfw_dir: Path) -> None:
    """lfw-dev faces shrunk to ~90 px in a 1280x720 frame: the default (full-range) detector finds
    them; ``detector=blazeface`` misses most (bench/results/detectors.md)."""
    found = {"full": 0, "short": 0}
    files = sorted((lfw_dir / "images").glob("*/*.jpg"))[::120][:16]
    for i, path in enumerate(files):
        frame = np.full((720, 1280, 3), 96, np.uint8)
        x, y = 60 + 60 * i, 40 + 25 * i
        frame[y : y + 200, x : x + 200] = cv2.resize(
            cv2.imread(str(path)), (200, 200), interpolation=cv2.INTER_AREA
        )
        data = _jpeg(frame)
        for key, det in (("full", None), ("short", "blazeface")):
            faces = _faces(far_server.url, data, det)
            found[key] += any(abs((f["box"]["x1"] + f["box"]["x2"]) / 2 - x - 100) < 50 for f in faces)
    assert found["full"] >= 0.65 * len(files) and found["short"] <= 0.25 * len(files), found
    bad = httpx.post(far_server.url + "/v1/detect", files={"a": data}, params={"detector": "blazeface-full"})
    assert bad.status_code == 400 and "blazeface_full" in bad.text


def test_flip_average_makes_a_mirror_image_embed_alike(far_server: Running, photos_dir: Path) -> None:
    """With flip averaging a photo and its mirror image give nearly the same embedding."""
    img = cv2.imread(str(photos_dir / "img1.jpg"))
    embs = []
    for version in (img, img[:, ::-1]):
        r = httpx.post(
            far_server.url + "/v1/embed", files={"a": _jpeg(np.ascontiguousarray(version))}, timeout=60
        )
        assert r.status_code == 200, r.text
        embs.append(np.asarray(r.json()["results"][0]["faces"][0]["embedding"], np.float32))
    assert float(embs[0] @ embs[1]) >= 0.98
