"""MTCNN: the box arithmetic on its own, then the whole cascade on real LFW faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facepipe.face.decode import decode_image
from facepipe.face.detect_mtcnn import MtcnnDetector, nms, regress, scales, square
from facepipe.face.faces import DetectParams, keep_faces
from facepipe.models.repository import Repository


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10, 0.9], [1, 1, 11, 11, 0.8], [50, 50, 60, 60, 0.7]], dtype=float)
    assert sorted(nms(boxes, 0.5).tolist()) == [0, 2]
    assert sorted(nms(boxes, 0.99).tolist()) == [0, 1, 2]


def test_square_and_regress() -> None:
    sq = square(np.array([[0.0, 0.0, 10.0, 20.0, 1.0]]))
    assert sq[0, :4].tolist() == [-5.0, 0.0, 15.0, 20.0]
    moved = regress(np.array([[0.0, 0.0, 9.0, 9.0]]), np.array([[0.1, 0.0, 0.1, 0.0]]))
    assert moved[0].tolist() == [1.0, 0.0, 10.0, 9.0]


def test_pyramid_stops_at_the_net_size() -> None:
    s = scales(250, 250, 40)
    assert s[0] == pytest.approx(12 / 40) and all(250 * x >= 12 for x in s)
    assert len(scales(250, 250, 20)) > len(s)


@pytest.fixture(scope="module")
def detector(models_dir: Path) -> MtcnnDetector:
    repo = Repository(models_dir)
    return MtcnnDetector(repo.bundle("mtcnn-pnet"), repo.bundle("mtcnn-rnet"), repo.bundle("mtcnn-onet"))


def test_landmarks_close_to_reference_on_real_faces(
    detector: MtcnnDetector, lfw_dir: Path, lfw_landmarks: dict[str, np.ndarray]
) -> None:
    files = sorted(lfw_landmarks)[:60]
    images = [decode_image((lfw_dir / "images" / f).read_bytes()) for f in files]
    params = [DetectParams()] * len(images)
    found = detector.detect(images, params)  # one batch: R-Net and O-Net run once over all images
    errors = []
    for f, faces in zip(files, found, strict=True):
        face = keep_faces(faces, DetectParams())[0]
        assert face.score > 0.9 and face.landmarks.shape == (5, 2)
        errors.append(np.linalg.norm(face.landmarks - lfw_landmarks[f], axis=1).mean())
    assert np.mean(errors) < 2.5 and np.mean(np.array(errors) <= 3) >= 0.9


def test_blank_image_has_no_face(detector: MtcnnDetector) -> None:
    assert detector.detect([np.full((200, 200, 3), 128, np.uint8)], [DetectParams()]) == [[]]


def test_max_faces_and_min_size_filter() -> None:
    from facepipe.face.faces import Face

    faces = [Face((0, 0, s, s), 0.9, np.zeros((5, 2))) for s in (30, 80, 50)]
    kept = keep_faces(faces, DetectParams(min_face_size=40, max_faces=1))
    assert [f.size for f in kept] == [80]


def test_pnet_grouped_across_images_finds_the_same_faces(detector: MtcnnDetector, lfw_dir: Path) -> None:
    """P-Net once per scale for all images of one size (the GPU default) gives the per-image result;
    images of other sizes and minimum face sizes form groups of their own."""
    files = sorted((lfw_dir / "images").glob("*/*.jpg"))[:12]
    images = [decode_image(f.read_bytes()) for f in files]
    images += [images[0][:201, :180].copy(), images[1][:180, :201].copy()]
    params = [DetectParams(min_face_size=20 if i % 3 else 40) for i in range(len(images))]
    detector.group = False
    alone = detector.detect(images, params)
    detector.group = True
    try:
        grouped = detector.detect(images, params)
    finally:
        detector.group = False
    assert [len(f) for f in grouped] == [len(f) for f in alone] and sum(map(len, alone)) >= len(images)
    for a, g in zip(alone, grouped, strict=True):
        for fa, fg in zip(a, g, strict=True):
            assert np.allclose(fa.box, fg.box, atol=1.0) and np.allclose(fa.landmarks, fg.landmarks, atol=0.5)
