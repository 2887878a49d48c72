from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facepipe.errors import InvalidInput
from facepipe.face.align import (
    ARCFACE_5,
    align,
    dlib_chip,
    dlib_chip_details,
    pyramid_down_2,
    similarity_transform,
)


def test_recovers_a_known_similarity() -> None:
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -5.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = ARCFACE_5 @ np.linalg.inv(rot).T - shift
    m = similarity_transform(src, ARCFACE_5)
    np.testing.assert_allclose(src @ m[:, :2].T + m[:, 2], ARCFACE_5, atol=1e-9)


def test_never_reflects() -> None:
    mirrored = ARCFACE_5 * np.array([-1.0, 1.0])
    m = similarity_transform(mirrored, ARCFACE_5)
    assert np.linalg.det(m[:, :2]) > 0


def test_align_outputs_112_crop() -> None:
    img = np.full((250, 250, 3), 200, np.uint8)
    crop = align(img, ARCFACE_5 * 2 + 10)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8


def test_bad_landmarks() -> None:
    with pytest.raises(InvalidInput, match="landmarks"):
        similarity_transform(np.zeros((3, 3)), ARCFACE_5[:3])


def test_dlib_chip_is_dlibs_own_on_lfw(
    dlib_faces: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
) -> None:
    """Pixel for pixel the chip dlib.get_face_chip cuts (150x150, padding 0.25) from the same landmarks."""
    for name, img, points, want in dlib_faces:
        got = dlib_chip(img, points)
        assert got.shape == (150, 150, 3) and got.dtype == np.uint8
        assert np.array_equal(got, want), (name, int(np.abs(got.astype(int) - want).max()))


def test_dlib_chip_is_dlibs_own_for_large_faces(photos_dir: Path, dlib_models: Path) -> None:
    """Faces more than twice the chip's size go through dlib's image pyramid first: same pixels too."""
    import dlib

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(dlib_models / "shape_predictor_5_face_landmarks.dat"))
    pyramid_faces = 0
    for name in ("img5.jpg", "img11.jpg", "img6.jpg", "img18.jpg"):
        img = dlib.load_rgb_image(str(photos_dir / name))
        dets = detector(img, 0)
        assert len(dets) > 0, name
        shape = predictor(img, dets[0])
        points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
        want = dlib.get_face_chip(img, shape, size=150, padding=0.25)
        assert np.array_equal(dlib_chip(img, points), want), name
        (left, _, right, _), _ = dlib_chip_details(points)
        pyramid_faces += (right - left + 1) / 2 > 150  # rect_down(rect) larger than the chip
    assert pyramid_faces >= 2


def test_pyramid_down_is_dlibs() -> None:
    import dlib

    img = np.random.default_rng(0).integers(0, 256, (101, 77, 3), dtype=np.uint8)
    assert np.array_equal(pyramid_down_2(img), dlib.pyramid_down(2)(img))


def test_dlib_chip_needs_five_points() -> None:
    with pytest.raises(InvalidInput, match="5 landmarks"):
        dlib_chip(np.zeros((100, 100, 3), np.uint8), ARCFACE_5[:4])
