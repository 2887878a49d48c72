from __future__ import annotations

import numpy as np
import pytest

from facepipe.errors import InvalidInput
from facepipe.face.align import ARCFACE_5, align, similarity_transform


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
