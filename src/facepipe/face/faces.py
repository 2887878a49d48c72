"""Records that flow through the face pipeline: request parameters, photos and the faces in them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from facepipe.face.quality import Quality


@dataclass(slots=True, frozen=True)
class DetectParams:
    min_face_size: float = 20.0
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)  # P-Net, R-Net, O-Net (or one, BlazeFace)
    max_faces: int = 0  # 0: all
    liveness: bool = False


@dataclass(slots=True)
class Face:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels
    score: float
    landmarks: np.ndarray  # (5, 2) or (4, 2): eyes, nose, mouth corners (or mouth centre)
    crop: np.ndarray | None = None  # aligned 112x112 RGB
    device_crop: Any = None  # the same crop as a tensor on the GPU (align on CUDA), read by embed
    embedding: np.ndarray | None = None
    liveness: float | None = None
    quality: Quality | None = None  # face/quality.py, written by the face DAG's join
    extra: dict[str, Any] = field(default_factory=dict)  # values of a user's face ops, by op name

    @classmethod
    def make(cls, box: np.ndarray, score: float, landmarks: np.ndarray) -> Face:
        x1, y1, x2, y2 = (float(v) for v in box[:4])
        return cls((x1, y1, x2, y2), score, np.asarray(landmarks, np.float32))

    @property
    def size(self) -> float:
        """Face size in pixels: the shorter side of the box."""
        return min(self.box[2] - self.box[0], self.box[3] - self.box[1])

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])


@dataclass(slots=True)
class Photo:
    """One image of a request on its way through the pipeline."""

    image: Any  # HxWx3 RGB uint8: an array, or a torch tensor on the GPU when decode runs there
    params: DetectParams = field(default_factory=DetectParams)
    faces: list[Face] = field(default_factory=list)
    label: str = "image"


def host_image(image: Any) -> np.ndarray:
    """A photo's image as a host array (a GPU tensor is copied back; an array is returned as it is)."""
    if isinstance(image, np.ndarray):
        return image
    return np.ascontiguousarray(image.cpu().numpy())


def keep_faces(faces: list[Face], p: DetectParams) -> list[Face]:
    """Faces at least ``min_face_size``, largest first, at most ``max_faces``."""
    kept = sorted((f for f in faces if f.size >= p.min_face_size), key=lambda f: -f.area)
    return kept[: p.max_faces] if p.max_faces > 0 else kept
