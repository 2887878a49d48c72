"""dlib's shape_predictor format read by facepipe's own reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from facepipe.errors import ConversionError
from facepipe.models.convert.dlib_shape import ShapeModel, read_shape_predictor


def test_reads_the_5_point_model(dlib_shape_model: ShapeModel) -> None:
    m = dlib_shape_model
    assert m.parts == 5 and len(m.cascades) == 15
    c = m.cascades[0]
    assert c.idx1.shape == c.thresh.shape == (500, 15)  # 500 trees of depth 4 per cascade
    assert c.leaves.shape == (500, 16, 10)
    assert c.anchors.shape == (800,) and c.deltas.shape == (800, 2) and c.anchors.max() < 5
    assert m.initial_shape.min() > 0 and m.initial_shape.max() < 1  # the mean shape, in the box


def test_truncated_file_is_refused(dlib_models: Path) -> None:
    data = (dlib_models / "shape_predictor_5_face_landmarks.dat").read_bytes()
    with pytest.raises(ConversionError, match="stream ends"):
        read_shape_predictor(data[:5000])
