"""dlib's shape predictor run in numpy: landmarks of a face box, as dlib's ``shape_predictor(img, box)``
computes them (float32 shape updates in dlib's order, pixel positions and landmarks rounded as dlib's
``point`` conversion rounds: floor(x + 0.5)).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facepipe.face.align import dlib_chip, similarity_transform
from facepipe.face.faces import Photo, host_image
from facepipe.models.convert.dlib_shape import Cascade, ShapeModel, load_shape_model

Box = tuple[int, int, int, int]  # dlib rectangle: left, top, right, bottom (inclusive)

# dlib's shape predictor was trained on the boxes of dlib's HOG detector. A detector's box moved and
# scaled to the HOG box of the same face: (centre dx, centre dy, side), in widths of the detector's box;
# the means over 299 lfw-dev faces (every 12th image). From BlazeFace boxes so adapted, the landmarks are
# within 1.1 % of the outer-eye distance of those from dlib's own box (mean; 2.5 % at the 95th
# percentile) and the descriptors of the two chips at cosine 0.998 (mean; 0.996 at the 5th percentile).
# The full-range BlazeFace's the same way: 316 faces (the method gives the short-range model's
# (0.021, -0.032, 0.978) again).
HOG_BOX = {
    "blazeface": (0.020, -0.032, 0.977),
    "blazeface_full": (0.022, 0.018, 0.932),
    "mtcnn": (0.031, 0.091, 1.120),
}


def intensity(rgb: np.ndarray) -> np.ndarray:
    """dlib's get_pixel_intensity of rgb pixels: (r + g + b) / 3 in integers."""
    if rgb.ndim == 2:
        return rgb.astype(np.float32)
    total: np.ndarray = rgb.astype(np.uint32).sum(axis=2)
    return (total // 3).astype(np.float32)


def _features(gray: np.ndarray, box: Box, shape: np.ndarray, initial: np.ndarray, c: Cascade) -> np.ndarray:
    """Intensities of the cascade's feature pixels, placed relative to the current shape."""
    pts = shape.reshape(-1, 2)
    m = similarity_transform(initial.reshape(-1, 2).astype(np.float64), pts.astype(np.float64))
    rot = m[:, :2].astype(np.float32)  # dlib keeps only the 2x2 part, cast to float
    px = (rot[0, 0] * c.deltas[:, 0] + rot[0, 1] * c.deltas[:, 1]) + pts[c.anchors, 0]
    py = (rot[1, 0] * c.deltas[:, 0] + rot[1, 1] * c.deltas[:, 1]) + pts[c.anchors, 1]
    left, top, right, bottom = box
    x = np.floor((right - left) * px.astype(np.float64) + left + 0.5).astype(np.int64)
    y = np.floor((bottom - top) * py.astype(np.float64) + top + 0.5).astype(np.int64)
    h, w = gray.shape
    inside = (x >= 0) & (y >= 0) & (x < w) & (y < h)
    out = np.zeros(len(x), np.float32)
    out[inside] = gray[y[inside], x[inside]]
    return out


def _trees(c: Cascade, feats: np.ndarray) -> np.ndarray:
    """The leaf each tree lands in (left child when feats[idx1] - feats[idx2] > thresh), per tree."""
    trees, splits = c.idx1.shape
    node = np.zeros(trees, np.int64)
    rows = np.arange(trees)
    while True:
        active = node < splits
        if not active.any():
            break
        n = np.where(active, node, 0)
        go_left = (feats[c.idx1[rows, n]] - feats[c.idx2[rows, n]]) > c.thresh[rows, n]
        node = np.where(active, np.where(go_left, 2 * node + 1, 2 * node + 2), node)
    leaves: np.ndarray = c.leaves[rows, node - splits]
    return leaves


def predict(model: ShapeModel, image: np.ndarray, box: Box) -> np.ndarray:
    """Landmarks (parts x 2, integer pixel positions as float64) of the face in ``box``."""
    gray = intensity(image)
    shape = model.initial_shape.copy()
    for c in model.cascades:
        leaves = _trees(c, _features(gray, box, shape, model.initial_shape, c))
        shape = np.cumsum(np.vstack([shape[None], leaves]), axis=0, dtype=np.float32)[-1]  # dlib's order
    left, top, right, bottom = box
    pts = shape.reshape(-1, 2).astype(np.float64)
    return np.floor(pts * [right - left, bottom - top] + [left, top] + 0.5)


def hog_box(box: tuple[float, float, float, float], detector: str) -> Box:
    """The dlib HOG-style box of a face found by ``detector`` (x1, y1, x2, y2 in pixels)."""
    dx, dy, side = HOG_BOX[detector]
    x1, y1, x2, y2 = box
    w = x2 - x1
    cx, cy, half = (x1 + x2) / 2 + dx * w, (y1 + y2) / 2 + dy * w, side * w / 2
    return (round(cx - half), round(cy - half), round(cx + half), round(cy + half))


class DlibChipOp:
    """Every face of every photo -> dlib's 150x150 chip (its 5 landmarks from the face's box), the
    input of an embedder whose manifest asks for ``alignment: dlib-5point-chip``."""

    def __init__(self, landmarks: Path, detector: str) -> None:
        if detector not in HOG_BOX:
            raise ValueError(f"no HOG box adaptation for detector {detector!r}")
        self.landmarks = landmarks
        self.detector = detector
        self.model: ShapeModel | None = None

    def setup(self) -> None:
        self.model = load_shape_model(self.landmarks)

    def __call__(self, batch: list[Photo]) -> list[Photo]:
        if self.model is None:
            raise RuntimeError("DlibChipOp.setup() was not called")
        for photo in batch:
            if not photo.faces:
                continue
            image = host_image(photo.image)
            for face in photo.faces:
                points = predict(self.model, image, hog_box(face.box, self.detector))
                face.crop = dlib_chip(image, points)
        return batch
