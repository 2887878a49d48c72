"""Real faces degraded on purpose, for the quality score's bench and tests (RGB or BGR uint8 in, same out).

- ``blur``: Gaussian blur of standard deviation ``level`` pixels.
- ``downscale``: the image shrunk by ``level`` (INTER_AREA), as a smaller photo of the same face.
- ``roll``: rotation by ``level`` degrees about the image centre (in-plane: exact).
- ``yaw``: out-of-plane rotation by ``level`` degrees, APPROXIMATED: each pixel gets the depth of an
  average head placed on the face's landmarks (a half-ellipsoid and a nose), the head is turned and
  re-projected. Unlike a flat homography, which only foreshortens, it moves the nose against the
  eyes as a head turn does; it reveals no hidden side and occludes nothing, and the head shape is
  not the person's: a proxy for a turned head, not a photo of one.
- ``screen`` and ``print``: spoof-like proxies for the liveness bench (a photo of a screen or of a
  printout is not available here): ``screen`` = halved resolution, a moiré grating, a blue cast and
  JPEG quality 30; ``print`` = halftone-like grey dots, a paper tone and compressed dynamic range.
"""

from __future__ import annotations

import cv2
import numpy as np

NOSE = 0.35  # the nose tip's height above the head's surface, in inter-ocular distances


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma) if sigma > 0 else image


def downscale(image: np.ndarray, factor: float) -> np.ndarray:
    if factor >= 1:
        return image
    h, w = image.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def roll(image: np.ndarray, degrees: float) -> np.ndarray:
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _depth(shape: tuple[int, int], landmarks: np.ndarray) -> np.ndarray:
    """A head's depth (pixels towards the camera) for each pixel: a half-ellipsoid through the
    landmarks (half width 1.3, half height 1.8 inter-ocular distances) plus a Gaussian nose."""
    pts = np.asarray(landmarks, np.float64).reshape(-1, 2)
    iod = float(np.hypot(*(pts[1] - pts[0])))
    cx, cy = pts[:2, 0].mean(), pts[:, 1].mean()
    a, b = 1.3 * iod, 1.8 * iod
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    head = a * np.sqrt(np.clip(1 - ((xx - cx) / a) ** 2 - ((yy - cy) / b) ** 2, 0, None))
    nx, ny = pts[2]
    nose = NOSE * iod * np.exp(-((xx - nx) ** 2 + (yy - ny) ** 2) / (2 * (0.3 * iod) ** 2))
    return head + nose


def yaw(image: np.ndarray, degrees: float, landmarks: np.ndarray) -> np.ndarray:
    """The face turned ``degrees`` about a vertical axis through its eyes' midpoint: each pixel lifted
    to the depth of ``_depth`` and re-projected (orthographic); per row, the forward map
    x' = cx + (x - cx) cos(phi) + z sin(phi) is inverted by interpolation (where it folds, the nearer
    surface wins). An approximation: no hidden side revealed, an average head shape."""
    h, w = image.shape[:2]
    pts = np.asarray(landmarks, np.float64).reshape(-1, 2)
    cx = pts[:2, 0].mean()
    phi = np.radians(degrees)
    xs = np.arange(w, dtype=np.float64)
    forward = cx + (xs[None, :] - cx) * np.cos(phi) + _depth((h, w), pts) * np.sin(phi)
    forward = np.maximum.accumulate(forward, axis=1)  # a fold: keep it monotone
    map_x = np.stack([np.interp(xs, row, xs) for row in forward]).astype(np.float32)
    map_y = np.repeat(np.arange(h, dtype=np.float32)[:, None], w, axis=1)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def screen(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    small = cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    up = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    grating = 12 * np.sin(2 * np.pi * (xx * 0.23 + yy * 0.07))[..., None]
    cast = np.array([0.9, 0.95, 1.1], np.float32)  # RGB: bluish
    out = np.clip(up * cast + grating, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, 30])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else out


def print_like(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    h, w = grey.shape
    yy, xx = np.mgrid[0:h, 0:w]
    dots = 10 * np.cos(np.pi * xx / 2) * np.cos(np.pi * yy / 2)
    paper = np.array([235, 228, 210], np.float32)  # RGB: off-white
    ink = (40 + 0.7 * grey + dots)[..., None] / 255.0
    return np.clip(ink * paper, 0, 255).astype(np.uint8)


DEGRADATIONS = {
    "blur": (blur, (0.0, 1.0, 2.0, 3.0, 4.0, 6.0)),  # sigma, px
    "downscale": (downscale, (1.0, 0.7, 0.5, 0.35, 0.25)),  # factor
    "roll": (roll, (0.0, 10.0, 20.0, 30.0, 40.0)),  # degrees
    "yaw": (yaw, (0.0, 10.0, 20.0, 30.0, 40.0)),  # degrees, depth-map approximation; needs landmarks
}
