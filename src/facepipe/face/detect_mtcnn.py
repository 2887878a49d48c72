"""MTCNN face detection with 5 landmarks on the converted P-, R- and O-Net bundles.

The cascade follows the published MTCNN algorithm (image pyramid with factor 0.709, P-Net proposals,
NMS, R-Net refinement, O-Net output with landmarks). These nets were trained on column-major
(transposed) images, which their bundles declare with ``preprocess.transposed``. R-Net and O-Net run
once per batch over the candidate boxes of every image in it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from facepipe.face.faces import DetectParams, Face, Photo, host_image, keep_faces
from facepipe.models.bundle import Bundle
from facepipe.runtime import CPU, RuntimeSpec, open_session

FACTOR = 0.709
CELL, STRIDE = 12, 2


@dataclass(slots=True)
class Net:
    bundle: Bundle
    session: Any

    def prepare(self, patches: np.ndarray) -> np.ndarray:
        """uint8 RGB NHWC -> the net's input (normalised, transposed when the bundle says so)."""
        pre = self.bundle.manifest.preprocess
        x = pre.normalize(patches)
        return np.ascontiguousarray(x.transpose(0, 2, 1, 3) if pre.transposed else x)

    def run(self, patches: np.ndarray) -> list[np.ndarray]:
        out: list[np.ndarray] = self.session.run({self.session.input_names[0]: self.prepare(patches)})
        return out


def nms(boxes: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Indices kept by greedy non-maximum suppression; boxes rows are ``x1, y1, x2, y2, score``."""
    x1, y1, x2, y2, s = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3], boxes[:, 4]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order, keep = np.argsort(s), []
    while order.size:
        i, rest = order[-1], order[:-1]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        denom = np.minimum(area[i], area[rest]) if method == "min" else area[i] + area[rest] - inter
        order = rest[inter / denom <= threshold]
    return np.asarray(keep, dtype=np.int64)


def regress(boxes: np.ndarray, reg: np.ndarray, plus_one: bool = True) -> np.ndarray:
    """Apply the nets' box regression (offsets relative to width and height)."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + (1 if plus_one else 0)
    h = boxes[:, 3] - boxes[:, 1] + (1 if plus_one else 0)
    out[:, 0:4] = boxes[:, 0:4] + reg * np.stack([w, h, w, h], axis=1)
    return out


def square(boxes: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2:4] = out[:, 0:2] + side[:, None]
    return out


def crops(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Square patches of (1-based, inclusive) integer boxes, zero outside the image, resized."""
    h, w = image.shape[:2]
    out = np.empty((len(boxes), size, size, 3), np.uint8)
    for k, (x1, y1, x2, y2) in enumerate(boxes[:, :4].astype(np.int64)):
        bw, bh = int(x2 - x1 + 1), int(y2 - y1 + 1)
        if bw <= 0 or bh <= 0:
            out[k] = 0
            continue
        patch = np.zeros((bh, bw, 3), np.uint8)
        sx, sy, ex, ey = max(x1, 1), max(y1, 1), min(x2, w), min(y2, h)
        if ex >= sx and ey >= sy:
            patch[sy - y1 : ey - y1 + 1, sx - x1 : ex - x1 + 1] = image[sy - 1 : ey, sx - 1 : ex]
        out[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_LINEAR)
    return out


def scales(h: int, w: int, min_face: float) -> list[float]:
    m = CELL / max(min_face, CELL)
    side, out = min(h, w) * m, list[float]()
    while side >= CELL:
        out.append(m * FACTOR ** len(out))
        side *= FACTOR
    return out


def _merged(found: list[np.ndarray]) -> np.ndarray:
    """One image's proposals of all scales: NMS at 0.7, regressed, squared."""
    found = [f for f in found if len(f)]
    if not found:
        return np.zeros((0, 5))
    boxes = np.concatenate(found)
    boxes = boxes[nms(boxes, 0.7)]
    return np.fix(square(regress(boxes[:, :5], boxes[:, 5:9], plus_one=False)))


class MtcnnDetector:
    """``detect(images, params)``: per image, the faces found, best first."""

    def __init__(
        self, pnet: Bundle, rnet: Bundle, onet: Bundle, runtime: RuntimeSpec = CPU, group: bool | None = None
    ) -> None:
        # P-Net batched across the images of a batch (grouped by size): on by default on a GPU; on CPU
        # the per-image calls are kept (same results, bench/results/cpu-face.md measured them)
        self.group = runtime.device == "cuda" if group is None else group
        self.pnet = Net(pnet, open_session(pnet, runtime.without_graphs()))
        boxes = replace(runtime, max_batch=0)  # R- and O-Net take every candidate box of a batch at once
        self.rnet = Net(rnet, open_session(rnet, boxes))
        self.onet = Net(onet, open_session(onet, boxes))

    def proposals(self, image: np.ndarray, p: DetectParams) -> np.ndarray:
        h, w = image.shape[:2]
        found = []
        for scale in scales(h, w, p.min_face_size):
            hs, ws = int(np.ceil(h * scale)), int(np.ceil(w * scale))
            resized = cv2.resize(image, (ws, hs), interpolation=cv2.INTER_LINEAR)
            out = self.pnet.run(resized[None])
            found.append(self._candidates(out[0][0], out[1][0], scale, p))
        return _merged(found)

    def _candidates(self, prob: np.ndarray, reg: np.ndarray, scale: float, p: DetectParams) -> np.ndarray:
        """One image's P-Net proposals at one scale, after NMS at 0.5 (rows: box, score, regression)."""
        if self.pnet.bundle.manifest.preprocess.transposed:
            prob, reg = prob.transpose(1, 0, 2), reg.transpose(1, 0, 2)
        rows, cols = np.nonzero(prob[:, :, 1] >= p.thresholds[0])
        if rows.size == 0:
            return np.zeros((0, 9))
        boxes = np.column_stack(
            [
                np.fix((STRIDE * cols + 1) / scale),
                np.fix((STRIDE * rows + 1) / scale),
                np.fix((STRIDE * cols + CELL) / scale),
                np.fix((STRIDE * rows + CELL) / scale),
                prob[rows, cols, 1],
                reg[rows, cols],
            ]
        )
        kept: np.ndarray = boxes[nms(boxes, 0.5)]
        return kept

    def grouped_proposals(self, images: list[np.ndarray], params: list[DetectParams]) -> list[np.ndarray]:
        """``proposals`` of every image, P-Net run once per pyramid scale for all the images of one size
        and minimum face size (on a GPU one call per image and scale was MTCNN's cost)."""
        groups: dict[tuple[int, int, float], list[int]] = {}
        for i, (img, p) in enumerate(zip(images, params, strict=True)):
            groups.setdefault((img.shape[0], img.shape[1], p.min_face_size), []).append(i)
        found: list[list[np.ndarray]] = [[] for _ in images]
        for (h, w, min_face), members in groups.items():
            for scale in scales(h, w, min_face):
                size = (int(np.ceil(w * scale)), int(np.ceil(h * scale)))
                stack = np.stack(
                    [cv2.resize(images[i], size, interpolation=cv2.INTER_LINEAR) for i in members]
                )
                prob, reg = self.pnet.run(stack)[:2]
                for k, i in enumerate(members):
                    found[i].append(self._candidates(prob[k], reg[k], scale, params[i]))
        return [_merged(f) for f in found]

    def detect(self, images: list[np.ndarray], params: list[DetectParams]) -> list[list[Face]]:
        if self.group:
            boxes = self.grouped_proposals(images, params)
        else:
            boxes = [self.proposals(img, p) for img, p in zip(images, params, strict=True)]
        boxes = self._refine(images, params, boxes)
        return self._output(images, params, boxes)

    def _stage(
        self, net: Net, images: list[np.ndarray], boxes: list[np.ndarray], size: int
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray] | None]:
        """Run ``net`` once over every image's boxes; split its outputs back per image."""
        counts = [len(b) for b in boxes]
        if sum(counts) == 0:
            return [np.zeros((0, 2))] * len(boxes), [np.zeros((0, 4))] * len(boxes), None
        patches = np.concatenate(
            [crops(img, b, size) for img, b in zip(images, boxes, strict=True) if len(b)]
        )
        outs = net.run(patches)
        split = np.cumsum(counts)[:-1]
        prob = np.split(outs[0], split)
        reg = np.split(outs[1], split)
        marks = np.split(outs[2], split) if len(outs) > 2 else None
        return prob, reg, marks

    def _refine(
        self, images: list[np.ndarray], params: list[DetectParams], boxes: list[np.ndarray]
    ) -> list[np.ndarray]:
        prob, reg, _ = self._stage(self.rnet, images, boxes, 24)
        out = []
        for cand, pr, rg, p in zip(boxes, prob, reg, params, strict=True):
            keep = pr[:, 1] > p.thresholds[1]
            if not keep.any():
                out.append(np.zeros((0, 5)))
                continue
            kept = np.column_stack([cand[keep, :4], pr[keep, 1]])
            k = nms(kept, 0.7)
            out.append(np.fix(square(regress(kept[k], rg[keep][k]))))
        return out

    def _output(
        self, images: list[np.ndarray], params: list[DetectParams], boxes: list[np.ndarray]
    ) -> list[list[Face]]:
        prob, reg, marks = self._stage(self.onet, images, boxes, 48)
        result: list[list[Face]] = []
        for i, (cand, p) in enumerate(zip(boxes, params, strict=True)):
            if marks is None or not len(cand):
                result.append([])
                continue
            keep = prob[i][:, 1] > p.thresholds[2]
            if not keep.any():
                result.append([])
                continue
            b, lm = cand[keep, :4], marks[i][keep]
            w, h = (b[:, 2] - b[:, 0] + 1)[:, None], (b[:, 3] - b[:, 1] + 1)[:, None]
            pts = np.stack([lm[:, :5] * w + b[:, :1] - 1, lm[:, 5:] * h + b[:, 1:2] - 1], axis=2)
            scored = np.column_stack([regress(b, reg[i][keep]), prob[i][keep, 1]])
            result.append(
                [Face.make(scored[j, :4], float(scored[j, 4]), pts[j]) for j in nms(scored, 0.7, "min")]
            )
        return result


class MtcnnOp:
    """Photos in, the same photos out with their faces (filtered by size, largest first)."""

    def __init__(self, nets: list[Bundle], runtime: RuntimeSpec = CPU) -> None:
        self.nets, self.runtime = nets, runtime
        self.detector: MtcnnDetector | None = None

    def setup(self) -> None:
        pnet, rnet, onet = self.nets
        self.detector = MtcnnDetector(pnet, rnet, onet, self.runtime)

    def __call__(self, batch: list[Photo]) -> list[Photo]:
        if self.detector is None:
            raise RuntimeError("MtcnnOp.setup() was not called")
        found = self.detector.detect([host_image(p.image) for p in batch], [p.params for p in batch])
        for photo, faces in zip(batch, found, strict=True):
            photo.faces = keep_faces(faces, photo.params)
        return batch
