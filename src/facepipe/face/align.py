"""ArcFace alignment: a similarity transform (Umeyama, no reflection) from detected landmarks to the
112x112 template, then a bilinear warp with a black border."""

from __future__ import annotations

import cv2
import numpy as np

from facepipe.errors import InvalidInput

# Left eye, right eye, nose tip, left mouth corner, right mouth corner (as seen in the image).
ARCFACE_5 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
# Eyes, nose tip and mouth centre: for detectors without mouth corners (BlazeFace).
ARCFACE_4 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [56.1396, 92.2848]], dtype=np.float64
)
SIZE = 112


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src onto dst; 2x3."""
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise InvalidInput(f"landmarks must be N x 2 with N >= 2 matching the template, got {src.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    flip = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        flip[1, 1] = -1
    rot = u @ flip @ vt
    var_s = (s**2).sum() / len(src)
    scale = float(np.trace(np.diag(sig) @ flip) / var_s) if var_s > 0 else 1.0
    out = np.zeros((2, 3))
    out[:, :2] = scale * rot
    out[:, 2] = mu_d - scale * rot @ mu_s
    return out


def align(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Warp ``image`` (HxWx3) so that its 5 (or 4) ``landmarks`` land on the ArcFace template."""
    pts = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    template = ARCFACE_5 if len(pts) == 5 else ARCFACE_4
    matrix = similarity_transform(pts, template)
    return cv2.warpAffine(image, matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderValue=0)
