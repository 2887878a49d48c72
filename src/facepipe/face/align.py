"""ArcFace alignment: a similarity transform (Umeyama, no reflection) from detected landmarks to the
112x112 template, then a bilinear warp with a black border."""

from __future__ import annotations

import math

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


def similarity_transforms(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """``similarity_transform`` of each of N point sets (N, K, 2) onto one template (K, 2), in one
    batched SVD: (N, 2, 3)."""
    k = src.shape[1]
    mu_s, mu_d = src.mean(1), dst.mean(0)
    s, d = src - mu_s[:, None], dst - mu_d
    cov = np.einsum("ki,nkj->nij", d, s) / k
    u, sig, vt = np.linalg.svd(cov)
    flip = np.where(np.linalg.det(u) * np.linalg.det(vt) < 0, -1.0, 1.0)
    u = u.copy()
    u[:, :, 1] *= flip[:, None]  # u @ diag(1, flip) @ vt
    rot = u @ vt
    var_s = (s**2).sum((1, 2)) / k
    scale = np.where(var_s > 0, (sig[:, 0] + flip * sig[:, 1]) / np.where(var_s > 0, var_s, 1.0), 1.0)
    out = np.zeros((len(src), 2, 3))
    out[:, :, :2] = scale[:, None, None] * rot
    out[:, :, 2] = mu_d - np.einsum("nij,nj->ni", out[:, :, :2], mu_s)
    return out


def template_for(points: np.ndarray) -> np.ndarray:
    """The ArcFace template of 5 landmarks, or of 4 (no mouth corners)."""
    return ARCFACE_5 if len(points) == 5 else ARCFACE_4


def align(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Warp ``image`` (HxWx3) so that its 5 (or 4) ``landmarks`` land on the ArcFace template."""
    pts = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    matrix = similarity_transform(pts, template_for(pts))
    return cv2.warpAffine(image, matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderValue=0)


# dlib's 5-point chip (dlib/image_transforms/interpolation.h: get_face_chip_details, extract_image_chips),
# reproduced step by step so that a face chip is the one dlib's face ResNet was trained on. Landmarks in
# shape_predictor_5 order: outer and inner corner of the eye on the image's right, outer and inner corner
# of the other eye, the base of the nose.
DLIB_5 = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ]
)
DLIB_CHIP_SIZE = 150
DLIB_CHIP_PADDING = 0.25  # dlib.get_face_chip's and compute_face_descriptor's default
Rect = tuple[float, float, float, float]  # dlib drectangle: left, top, right, bottom (inclusive)


def dlib_chip_details(
    landmarks: np.ndarray, size: int = DLIB_CHIP_SIZE, padding: float = DLIB_CHIP_PADDING
) -> tuple[Rect, float]:
    """dlib's ``chip_details`` of a face: the (unrotated) rectangle in the image and its angle."""
    pts = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    if pts.shape != (5, 2):
        raise InvalidInput(f"dlib chips need the 5 landmarks of shape_predictor_5, got {pts.shape}")
    chip_pts = (padding + DLIB_5) / (2 * padding + 1) * size
    m = similarity_transform(chip_pts, pts)  # chip -> image
    angle = float(np.arctan2(m[1, 0], m[0, 0]))
    scale = float(np.hypot(m[0, 0], m[1, 0]))
    cx, cy = m[:, :2] @ np.array([size / 2.0, size / 2.0]) + m[:, 2]
    half = (size * scale - 1) / 2  # centered_drect: width-1 between left and right
    return (cx - half, cy - half, cx + half, cy + half), angle


def _rotated(rect: Rect, angle: float) -> np.ndarray:
    """The rectangle's tl, tr, bl, br corners rotated about its centre (dlib's rotate_point)."""
    x0, y0, x1, y1 = rect
    centre = np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0])
    sin, cos = math.sin(angle), math.cos(angle)
    d: np.ndarray = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]]) - centre
    out: np.ndarray = np.stack([cos * d[:, 0] - sin * d[:, 1], sin * d[:, 0] + cos * d[:, 1]], axis=1)
    out += centre
    return out


def _rect_down(rect: Rect) -> Rect:
    """pyramid_down<2>::rect_down: each corner p -> p/2 - (1.25, 0.75)."""
    x0, y0, x1, y1 = rect
    return (x0 / 2 - 1.25, y0 / 2 - 0.75, x1 / 2 - 1.25, y1 / 2 - 0.75)


def _area(rect: Rect) -> float:
    x0, y0, x1, y1 = rect
    return 0.0 if x0 > x1 or y0 > y1 else (x1 - x0 + 1) * (y1 - y0 + 1)


PYR_KERNEL = np.array([1, 4, 6, 4, 1], np.float32)


def pyramid_down_2(img: np.ndarray) -> np.ndarray:
    """dlib's pyramid_down<2> for RGB: the 5-tap [1 4 6 4 1] filter over rows then columns, in
    integers, divided by 256 (truncated), at every second pixel from the third. The sums stay below
    2**24, so OpenCV's float32 separable filter computes them exactly (10x faster than numpy here)."""
    h, w = img.shape[:2]
    if h <= 8 or w <= 8:
        return np.zeros((0, 0, 3), np.uint8)
    full = cv2.sepFilter2D(img.astype(np.float32), -1, PYR_KERNEL, PYR_KERNEL, borderType=cv2.BORDER_CONSTANT)
    rows, cols = (h - 3) // 2, (w - 3) // 2
    out: np.ndarray = np.floor(full[2 : 2 + 2 * rows : 2, 2 : 2 + 2 * cols : 2] / 256)
    return out.astype(np.uint8)


def _bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dlib's interpolate_bilinear: 0 where a 2x2 neighbourhood leaves the image; truncated to uint8."""
    h, w = img.shape[:2]
    left, top = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    ok = (left >= 0) & (top >= 0) & (left + 1 < w) & (top + 1 < h)
    lx, ty = np.where(ok, left, 0), np.where(ok, top, 0)
    lr, tb = (x - left)[..., None], (y - top)[..., None]
    px = img.astype(np.float64)
    tl, tr, bl, br = px[ty, lx], px[ty, lx + 1], px[ty + 1, lx], px[ty + 1, lx + 1]
    val = (1 - tb) * ((1 - lr) * tl + lr * tr) + tb * ((1 - lr) * bl + lr * br)
    return np.where(ok[..., None], val, 0).astype(np.uint8)


def dlib_chip(
    image: np.ndarray, landmarks: np.ndarray, size: int = DLIB_CHIP_SIZE, padding: float = DLIB_CHIP_PADDING
) -> np.ndarray:
    """dlib.get_face_chip(image, shape, size, padding) without dlib: the chip of an RGB uint8 image."""
    rect, angle = dlib_chip_details(landmarks, size, padding)
    chip_area = float(size * size)
    depth, grow, down = 0, 2.0, _rect_down(rect)
    while _area(down) > chip_area:  # the pyramid depth that keeps bilinear sampling from aliasing
        down, depth, grow = _rect_down(down), depth + 1, grow * 2 + 2
    h, w = image.shape[:2]
    corners = _rotated(rect, angle)
    box = [max(corners[:, 0].min() - grow, 0), max(corners[:, 1].min() - grow, 0)]
    box += [min(corners[:, 0].max() + grow, w - 1), min(corners[:, 1].max() + grow, h - 1)]
    bl, bt, br, bb = (int(np.floor(v + 0.5)) if v >= 0 else -int(np.floor(-v + 0.5)) for v in box)  # lround
    level = np.ascontiguousarray(image[bt : bb + 1, bl : br + 1])
    local: Rect = (rect[0] - bl, rect[1] - bt, rect[2] - bl, rect[3] - bt)
    for _ in range(depth):
        level, local = pyramid_down_2(level), _rect_down(local)
    dst = _rotated(local, angle)[:3]  # chip (0,0), (size-1,0), (0,size-1) -> tl, tr, bl
    src = np.array([[0.0, 0.0, 1.0], [size - 1.0, 0.0, 1.0], [0.0, size - 1.0, 1.0]])
    affine = np.linalg.solve(src, dst).T  # 2x3: chip (x, y, 1) -> level image
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    mx = affine[0, 0] * xs + affine[0, 1] * ys + affine[0, 2]
    my = affine[1, 0] * xs + affine[1, 1] * ys + affine[1, 2]
    return _bilinear(level, mx, my)
