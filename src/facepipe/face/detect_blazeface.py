"""BlazeFace (MediaPipe): the fast detectors. The short-range (front-camera) model for close-up faces;
the full-range model for faces up to ~5 m away.

The image is padded to a square (bottom and right) and resized to the net's input: 128x128 for the
short-range model, which scores 896 anchors (a 16x16 grid with 2 anchors per cell and an 8x8 grid
with 6); 192x192 for the full-range one, 2304 anchors (one 48x48 grid, 1 anchor per cell: MediaPipe's
face_detection_full_range.pbtxt, num_layers 1, strides 4, interpolated_scale_aspect_ratio 0). Per
anchor, the net regresses a box and six keypoints as offsets in input pixels. Boxes above the
threshold are kept by non-maximum suppression and blended with their overlapping detections; the
first four keypoints (eyes, nose tip, mouth centre, as seen in the image) drive a 4-point alignment.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import cv2
import numpy as np

from facepipe.errors import ModelError
from facepipe.face.detect_mtcnn import nms
from facepipe.face.faces import Face, Photo, keep_faces
from facepipe.models.bundle import Bundle
from facepipe.runtime import CPU, RuntimeSpec, open_session

SIZE = 128  # the short-range model's input; a bundle's own is its preprocess size
NMS_IOU = 0.3


def anchors(grids: list[list[int]]) -> np.ndarray:
    """Anchor centres (x, y) in [0, 1], in the net's output order: row, column, anchor."""
    out = [
        ((x + 0.5) / cells, (y + 0.5) / cells)
        for cells, per_cell in grids
        for y in range(cells)
        for x in range(cells)
        for _ in range(per_cell)
    ]
    return np.asarray(out, np.float32)


def decode(
    scores: np.ndarray, raw: np.ndarray, centres: np.ndarray, threshold: float, side: float, size: int = SIZE
) -> list[Face]:
    """Faces in a ``side`` x ``side`` padded image from the logits and regressions of a net whose
    input is ``size`` x ``size``."""
    prob = 1.0 / (1.0 + np.exp(-np.clip(scores, -80, 80)))
    keep = np.flatnonzero(prob >= threshold)
    if keep.size == 0:
        return []
    reg, c = raw[keep], centres[keep]
    centre = c + reg[:, 0:2] / size
    half = reg[:, 2:4] / size / 2
    boxes = np.hstack([centre - half, centre + half]) * side
    points = (c[:, None, :] + reg[:, 4:16].reshape(-1, 6, 2) / size) * side
    rows = np.hstack([boxes, prob[keep, None]])
    faces = []
    for i in nms(rows, NMS_IOU):
        # MediaPipe's blending: the box and keypoints of a face are the score-weighted mean of every
        # detection that overlaps the kept one (steadier landmarks than the single best anchor)
        near = _iou(rows[i], rows) > NMS_IOU
        wts = rows[near, 4:5]
        box = (rows[near, :4] * wts).sum(0) / wts.sum()
        pts = (points[near] * wts[:, :, None]).sum(0) / wts.sum()
        faces.append(Face.make(box, float(rows[i, 4]), pts[:4]))
    return faces


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    w = np.maximum(0.0, np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]))
    h = np.maximum(0.0, np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]))
    inter = w * h
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.asarray(inter / np.maximum(area + areas - inter, 1e-9))


class BlazeFaceOp:
    """Photos in, the same photos out with their faces (filtered by size, largest first)."""

    def __init__(self, bundle: Bundle, runtime: RuntimeSpec = CPU) -> None:
        self.bundle, self.runtime = bundle, runtime
        self.centres = anchors(bundle.manifest.extra.get("anchors", [[16, 2], [8, 6]]))
        self.size = int((bundle.manifest.preprocess.size or [SIZE])[0])
        self.session: Any = None

    def setup(self) -> None:
        try:
            self.session = open_session(self.bundle, self.runtime)
        except ModelError:  # an operator the torch runtime lacks: this small net runs fine on CPU
            self.session = open_session(self.bundle, CPU)

    def detect(self, images: list[Any], thresholds: list[float]) -> list[list[Face]]:
        """Faces per image; every image of the batch in one model call (chunked by the runtime). Images
        on the GPU are padded and shrunk there (face/device.py: area_square)."""
        squares: Any
        if images and not isinstance(images[0], np.ndarray):  # on the GPU (decode ran there)
            from facepipe.face.device import device_squares

            squares = device_squares(images, self.size, partial(_square, size=self.size))
        else:
            squares = np.stack([_square(img, self.size) for img in images])
        if hasattr(self.session, "run_pixels"):  # normalised on the device
            outs = self.session.run_pixels(squares)
        else:
            squares = squares if isinstance(squares, np.ndarray) else squares.cpu().numpy()
            x = self.bundle.manifest.preprocess.normalize(squares)
            outs = self.session.run({self.session.input_names[0]: x})
        # scores (last axis 1) and regressions (16), each in anchor-layer order: the short-range
        # graph gives one of each per layer, the full-range one a single pair
        scores = np.concatenate([o[..., 0] for o in outs if o.shape[-1] == 1], axis=1)
        raw = np.concatenate([o for o in outs if o.shape[-1] != 1], axis=1)
        return [
            decode(scores[i], raw[i], self.centres, t, max(img.shape[:2]), self.size)
            for i, (img, t) in enumerate(zip(images, thresholds, strict=True))
        ]

    def __call__(self, batch: list[Photo]) -> list[Photo]:
        if self.session is None:
            raise RuntimeError("BlazeFaceOp.setup() was not called")
        found = self.detect([p.image for p in batch], [p.params.thresholds[-1] for p in batch])
        for photo, faces in zip(batch, found, strict=True):
            photo.faces = keep_faces(faces, photo.params)
        return batch


def _square(image: np.ndarray, size: int = SIZE) -> np.ndarray:
    """The image padded to a square (bottom and right) and resized to the net's ``size`` x ``size``."""
    h, w = image.shape[:2]
    side = max(h, w)
    square = np.zeros((side, side, 3), np.uint8)
    square[:h, :w] = image
    return cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)
