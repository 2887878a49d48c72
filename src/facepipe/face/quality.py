"""Face quality: one score per face from measured signals, a branch of the face DAG after ``align``.

Signals (each measured, then mapped to a factor in [0, 1] by a linear ramp between a ``bad`` value,
factor 0, and a ``good`` value, factor 1):

- ``sharpness``: variance of the Laplacian of the aligned crop's grey levels (resized to 112x112,
  the central 80x80 pixels), divided by the variance of those grey levels: high-frequency energy
  per unit of contrast, so a dim or low-contrast face is not taken for a blurred one.
- ``yaw``, ``pitch``, ``roll`` in degrees, from the 5 landmarks (eyes, nose tip, mouth corners or
  centre), in the frame of the eye line: ``roll`` = the eye line's angle (exact: in-plane);
  ``yaw`` = atan(r / 0.4), r = the nose tip's offset from the eye midpoint along the eye line divided
  by the inter-ocular distance; ``pitch`` = atan((t0 - t) / 0.4), t = the nose's distance below the
  eye line divided by the mouth's, t0 = 0.495 its value on the ArcFace template. 0.4 stands for the
  nose tip's depth in front of the eyes and mouth, as a fraction of those distances on an average
  face: an approximation, not a fitted 3-D head model.
- ``size``: the shorter side of the detector's box in pixels.
- ``confidence``: the detector's score.

``quality`` = the product of the six factors (1.0: nothing measured against the face). A refusal
names the signal with the smallest factor, its value and the range it was held to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from facepipe.face.faces import Face, Photo

NOSE_DEPTH = 0.4
PITCH_T0 = (71.7366 - 51.599) / (92.2848 - 51.599)  # ArcFace template: nose / mouth below the eye line


@dataclass(slots=True, frozen=True)
class Ramp:
    """A signal's factor: 0 at ``bad``, 1 at ``good``, linear between (either may be the larger)."""

    bad: float
    good: float

    def __call__(self, value: float) -> float:
        t = (value - self.bad) / (self.good - self.bad)
        return float(min(1.0, max(0.0, t)))

    def describe(self) -> str:
        return f"factor 0 at {self.bad:g}, 1 at {self.good:g}"


# Measured on lfw-dev through the server (bench/results/quality.md): the typical real face keeps every
# factor at 1; blur, downscaling and rotation pull one of them down.
RAMPS: dict[str, Ramp] = {
    "sharpness": Ramp(0.05, 0.4),
    "yaw": Ramp(60.0, 25.0),  # |yaw| in degrees
    "pitch": Ramp(50.0, 25.0),  # |pitch| in degrees
    "roll": Ramp(45.0, 10.0),  # |roll| in degrees
    "size": Ramp(20.0, 64.0),  # pixels
    "confidence": Ramp(0.5, 0.9),
}
SIGNALS = tuple(RAMPS)
ANGLES = ("yaw", "pitch", "roll")


@dataclass(slots=True, frozen=True)
class Quality:
    """A face's quality score and the measured signals it was built from."""

    score: float
    signals: dict[str, float]

    def factors(self) -> dict[str, float]:
        return {k: RAMPS[k](abs(v) if k in ANGLES else v) for k, v in self.signals.items()}

    def weakest(self) -> str:
        f = self.factors()
        return min(f, key=lambda k: f[k])

    def reason(self, minimum: float) -> str:
        """Why this face falls below ``minimum``, naming the signal that pulled it down most."""
        name = self.weakest()
        value = self.signals[name]
        unit = " degrees" if name in ANGLES else (" px" if name == "size" else "")
        return (
            f"face quality {self.score:.3f} is below min_quality {minimum:g}; weakest signal: "
            f"{name} {value:.3g}{unit} ({RAMPS[name].describe()})"
        )

    def as_json(self) -> dict[str, Any]:
        return {"score": round(self.score, 4), **{k: round(v, 4) for k, v in self.signals.items()}}


def sharpness(crop: np.ndarray) -> float:
    """Laplacian variance over grey-level variance of the crop's centre (resized to 112x112)."""
    if crop.shape[:2] != (112, 112):
        crop = cv2.resize(crop, (112, 112), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)[16:96, 16:96].astype(np.float64)
    contrast = float(grey.var())
    if contrast < 1e-6:
        return 0.0
    return float(cv2.Laplacian(grey, cv2.CV_64F, ksize=3).var() / contrast)


def head_pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from 5 (or 4: mouth centre) landmarks; see the module's doc."""
    pts = np.asarray(landmarks, np.float64).reshape(-1, 2)
    left, right, nose = pts[0], pts[1], pts[2]
    mouth = pts[3] if len(pts) == 4 else (pts[3] + pts[4]) / 2
    eye_vec = right - left
    iod = float(np.hypot(*eye_vec))
    if iod < 1e-6:
        return 90.0, 90.0, 0.0
    roll = math.degrees(math.atan2(eye_vec[1], eye_vec[0]))
    along = eye_vec / iod
    down = np.array([-along[1], along[0]])  # perpendicular to the eye line, towards the mouth
    mid = (left + right) / 2
    r = float((nose - mid) @ along) / iod
    nose_down, mouth_down = float((nose - mid) @ down), float((mouth - mid) @ down)
    t = nose_down / mouth_down if mouth_down > 1e-6 else 0.0
    yaw = math.degrees(math.atan(r / NOSE_DEPTH))
    pitch = math.degrees(math.atan((PITCH_T0 - t) / NOSE_DEPTH))
    return yaw, pitch, roll


def measure(face: Face) -> Quality:
    """The face's quality from its aligned crop, landmarks, box and detector score."""
    yaw, pitch, roll = head_pose(face.landmarks)
    signals = {
        "sharpness": sharpness(face.crop) if face.crop is not None else 0.0,
        "yaw": yaw,
        "pitch": pitch,
        "roll": roll,
        "size": float(face.size),
        "confidence": float(face.score),
    }
    factors = [RAMPS[k](abs(v) if k in ANGLES else v) for k, v in signals.items()]
    return Quality(float(np.prod(factors)), signals)


class QualityOp:
    """Photos in (after ``align``); per photo, the ``Quality`` of each face. The photos are only read:
    the face DAG's join writes ``face.quality``. Cheap (a Laplacian on 80x80 pixels per face), so it
    runs for every photo."""

    def setup(self) -> None:
        return None

    def __call__(self, batch: list[Photo]) -> list[list[Quality]]:
        return [[measure(f) for f in p.faces] for p in batch]
