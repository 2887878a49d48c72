"""Liveness: the anti-spoofing net's score for each face of the photos that asked for it."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from facepipe.face.faces import Face, Photo, host_image
from facepipe.models.bundle import Bundle
from facepipe.runtime import CPU, RuntimeSpec, open_session


def face_patch(image: np.ndarray, face: Face, size: int) -> np.ndarray:
    """The face's box (clipped to the image), resized to the net's input."""
    h, w = image.shape[:2]
    x1, y1 = max(0, int(face.box[0])), max(0, int(face.box[1]))
    x2, y2 = min(w, int(np.ceil(face.box[2]))), min(h, int(np.ceil(face.box[3])))
    patch = image[y1:y2, x1:x2] if x2 > x1 and y2 > y1 else np.zeros((size, size, 3), np.uint8)
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_LINEAR)


class LivenessOp:
    """Photos in; per photo, one score per face where ``params.liveness`` asked (else None). The
    photos are only read: the face DAG's join writes the scores into ``face.liveness``."""

    def __init__(self, bundle: Bundle, runtime: RuntimeSpec = CPU) -> None:
        self.bundle, self.runtime = bundle, runtime
        self.session: Any = None
        self.spoof_above = float(bundle.manifest.extra.get("spoof_above", 0.2))

    def setup(self) -> None:
        self.session = open_session(self.bundle, self.runtime)

    def __call__(self, batch: list[Any]) -> list[Any]:
        if self.session is None:
            raise RuntimeError("LivenessOp.setup() was not called")
        asked = {id(p) for p in batch if isinstance(p, Photo) and p.params.liveness}
        wanted = [(p, f) for p in batch if id(p) in asked for f in p.faces]
        if not wanted:
            return [[] if id(p) in asked else None for p in batch]
        pre = self.bundle.manifest.preprocess
        size = pre.size[1]
        x = pre.normalize(np.stack([face_patch(host_image(p.image), f, size) for p, f in wanted]))
        clss, leaf = self.session.run({self.session.input_names[0]: x})
        scores = iter(float(s) for s in np.sum(np.abs(clss) * leaf, axis=1))
        return [[next(scores) for _ in p.faces] if id(p) in asked else None for p in batch]
