"""BlazeFace: anchors in the net's order, decoding, and real faces found with 4 landmarks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facepipe.face.detect_blazeface import SIZE, BlazeFaceOp, anchors, decode
from facepipe.face.faces import DetectParams, Photo
from facepipe.models.bundle import load_bundle


def _detector(models_dir: Path, bundle: str) -> BlazeFaceOp:
    if not (models_dir / bundle / "1").is_dir():
        pytest.skip(f"{bundle} is not installed: run `facepipe models pull {bundle}`")
    detector = BlazeFaceOp(load_bundle(models_dir / bundle / "1"))
    detector.setup()
    return detector


@pytest.fixture(scope="module")
def op(models_dir: Path) -> BlazeFaceOp:
    return _detector(models_dir, "blazeface")


def test_anchors_follow_rows_then_columns_then_anchors() -> None:
    a = anchors([[16, 2], [8, 6]])
    assert a.shape == (896, 2)
    assert np.allclose(a[0], a[1]) and np.allclose(a[0], [1 / 32, 1 / 32])
    assert np.allclose(a[2], [3 / 32, 1 / 32]) and np.allclose(a[32], [1 / 32, 3 / 32])
    assert np.allclose(a[512], [1 / 16, 1 / 16])


def test_decode_places_a_box_and_keypoints_in_image_pixels() -> None:
    centres = anchors([[16, 2], [8, 6]])
    scores = np.full(896, -10.0, np.float32)
    raw = np.zeros((896, 16), np.float32)
    scores[600] = 5.0
    raw[600, :4] = [4, -2, 32, 40]  # centre offset and size, in 128-px input units
    raw[600, 4:6] = [-8, -6]  # first keypoint
    faces = decode(scores, raw, centres, 0.5, side=256.0)
    assert len(faces) == 1
    cx, cy = (centres[600] + np.array([4, -2]) / SIZE) * 256
    x1, y1, x2, y2 = faces[0].box
    assert np.allclose([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], [cx, cy, 64, 80], atol=1e-3)
    assert faces[0].landmarks.shape == (4, 2) and faces[0].score > 0.99
    assert decode(scores, raw, centres, 0.999, 256.0) == []


def test_real_faces(op: BlazeFaceOp, lfw_dir: Path, lfw_landmarks: dict[str, np.ndarray]) -> None:
    errors = []
    for name in sorted(lfw_landmarks)[:40]:
        img = cv2.cvtColor(cv2.imread(str(lfw_dir / "images" / name)), cv2.COLOR_BGR2RGB)
        photo = op([Photo(img, DetectParams(min_face_size=40, thresholds=(0.6, 0.7, 0.5)))])[0]
        assert photo.faces, name
        eyes = photo.faces[0].landmarks[:2]
        errors.append(np.linalg.norm(eyes - lfw_landmarks[name][:2], axis=1).mean())
    assert np.median(errors) < 4 and np.mean(np.array(errors) < 8) >= 0.9
    blank = np.full((200, 300, 3), 120, np.uint8)
    assert op([Photo(blank, DetectParams())])[0].faces == []


def test_a_batch_finds_what_single_images_find(
    op: BlazeFaceOp, lfw_dir: Path, lfw_landmarks: dict[str, np.ndarray]
) -> None:
    """The bundle takes a batch (its published graph was for one image): same faces either way."""
    images = [
        cv2.cvtColor(cv2.imread(str(lfw_dir / "images" / name)), cv2.COLOR_BGR2RGB)
        for name in sorted(lfw_landmarks)[:6]
    ]
    images[2] = cv2.resize(images[2], (320, 180))  # sizes differ within a batch
    alone = [op.detect([img], [0.5])[0] for img in images]
    together = op.detect(images, [0.5] * len(images))
    for a, b in zip(alone, together, strict=True):
        assert len(a) == len(b)
        for fa, fb in zip(a, b, strict=True):
            assert np.allclose(fa.box, fb.box, atol=1e-3)
            assert np.allclose(fa.landmarks, fb.landmarks, atol=1e-3)


@pytest.fixture(scope="module")
def full_op(models_dir: Path) -> BlazeFaceOp:
    return _detector(models_dir, "blazeface-full")


def test_full_range_anchors_are_one_48_grid() -> None:
    """MediaPipe's face_detection_full_range.pbtxt: 192x192 input, one layer at stride 4, 1 anchor a cell."""
    a = anchors([[48, 1]])
    assert a.shape == (2304, 2)
    assert np.allclose(a[0], [1 / 96, 1 / 96]) and np.allclose(a[1], [3 / 96, 1 / 96])
    assert np.allclose(a[48], [1 / 96, 3 / 96]) and np.allclose(a[-1], [95 / 96, 95 / 96])


def _far(img: np.ndarray, side: int, x: int, y: int) -> np.ndarray:
    """The image shrunk to ``side`` px inside a 1280x720 frame: a face a few metres away."""
    frame = np.full((720, 1280, 3), 96, np.uint8)
    frame[y : y + side, x : x + side] = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
    return frame


def test_full_range_finds_far_faces_the_short_range_misses(
    op: BlazeFaceOp, full_op: BlazeFaceOp, lfw_dir: Path, lfw_landmarks: dict[str, np.ndarray]
) -> None:
    """lfw-dev images shrunk to 250 px (faces ~110 px, 9 % of the frame's width) in a 1280x720 frame:
    full-range finds nearly all of them, short-range about a third (bench/results/detectors.md)."""
    found = {"short": 0, "full": 0}
    names = sorted(lfw_landmarks)[::48][:40]
    for i, name in enumerate(names):
        img = cv2.cvtColor(cv2.imread(str(lfw_dir / "images" / name)), cv2.COLOR_BGR2RGB)
        x, y = 40 + 22 * i, 20 + 10 * i
        frame = _far(img, 250, x, y)
        for key, det in (("short", op), ("full", full_op)):
            faces = det.detect([frame], [0.5])[0]
            found[key] += any(abs((f.box[0] + f.box[2]) / 2 - x - 125) < 60 for f in faces)
    assert found["full"] >= 0.8 * len(names) and found["short"] <= 0.6 * len(names), found


def test_full_range_on_close_up_photos(op: BlazeFaceOp, full_op: BlazeFaceOp, photos_dir: Path) -> None:
    """On the real photos, the full-range model's largest face is the short-range model's too, with
    its 4 landmarks inside the box."""
    for path in sorted(photos_dir.glob("*.jpg"))[:6]:
        img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        full = full_op([Photo(img, DetectParams(thresholds=(0.6, 0.7, 0.5)))])[0].faces
        short = op([Photo(img, DetectParams(thresholds=(0.6, 0.7, 0.5)))])[0].faces
        assert full and short, path.name
        a, b = full[0].box, short[0].box
        inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        assert inter / union > 0.6, path.name
        pts = full[0].landmarks
        assert pts.shape == (4, 2) and (pts[:, 0] > a[0]).all() and (pts[:, 0] < a[2]).all(), path.name
