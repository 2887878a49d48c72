"""BlazeFace: anchors in the net's order, decoding, and real faces found with 4 landmarks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facepipe.face.detect_blazeface import SIZE, BlazeFaceOp, anchors, decode
from facepipe.face.faces import DetectParams, Photo
from facepipe.models.bundle import load_bundle


@pytest.fixture(scope="module")
def op(models_dir: Path) -> BlazeFaceOp:
    if not (models_dir / "blazeface" / "1").is_dir():
        pytest.skip("the blazeface pack is not installed: run `facepipe models pull blazeface`")
    detector = BlazeFaceOp(load_bundle(models_dir / "blazeface" / "1"))
    detector.setup()
    return detector


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
