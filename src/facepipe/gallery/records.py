"""The gallery's records: what the store gives back and what it takes in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(slots=True)
class Subject:
    id: str
    name: str
    metadata: dict[str, Any]
    created: float
    faces: int = 0


@dataclass(slots=True)
class FaceRecord:
    id: int
    subject_id: str
    model: str
    model_version: str
    image_sha256: str
    quality: dict[str, Any]
    created: float
    has_crop: bool


@dataclass(slots=True)
class NewFace:
    embedding: np.ndarray  # float32, L2-normalised
    image_sha256: str
    crop_png: bytes | None
    quality: dict[str, Any] = field(default_factory=dict)
