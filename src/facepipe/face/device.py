"""The photo path's pixel work on a torch device (CUDA; CPU runs the same code in the tests).

- ``warp_crops``: the ArcFace alignment warp of every face of a batch in one gather: OpenCV's
  ``warpAffine`` (bilinear, black border; OpenCV 5 computes it in float32 from the inverted matrix)
  in float32, within 1 grey level of cv2 on a few pixels in 10,000 (tests/face/test_device.py).
- ``area_square``: BlazeFace's input (the image padded to a square, bottom and right, then
  ``INTER_AREA`` to 128x128) as two matrix products with OpenCV's area weights; the padding is zeros,
  so only the image's own rows and columns of the weights are used.
- ``decode_jpegs``: JPEGs decoded by nvJPEG through torchvision, where torchvision is installed.

Images on the device are HxWx3 uint8 tensors (``shape[:2]`` is (height, width), as for arrays).
"""

from __future__ import annotations

import importlib.util
import struct
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch


def has_nvjpeg() -> bool:
    """torchvision is importable (its ``decode_jpeg`` runs nvJPEG for ``device='cuda'``)."""
    return importlib.util.find_spec("torchvision") is not None


class Lane:
    """A stream of one op's own for its device work (never the legacy default stream, which would tie
    it to a CUDA graph another worker is capturing) and a blocking event to wait for it: tensors an op
    hands to the next op are complete, and the waiting thread sleeps instead of spinning a core."""

    def __init__(self, device: torch.device) -> None:
        cuda = device.type == "cuda"
        self.device = device
        self.stream = torch.cuda.Stream(device) if cuda else None  # type: ignore[no-untyped-call]
        self.done = torch.cuda.Event(blocking=True) if cuda else None  # type: ignore[no-untyped-call]
        self._ctx: Any = None

    def __enter__(self) -> Lane:
        if self.stream is not None:
            self._ctx = torch.cuda.stream(self.stream)
            self._ctx.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(*exc)
            self._ctx = None

    def wait(self) -> None:
        if self.stream is not None and self.done is not None:
            self.done.record(self.stream)
            self.done.synchronize()


def to_host(t: torch.Tensor, lane: Lane) -> np.ndarray:
    """``t`` copied to the host through pinned memory, waiting on ``lane``'s event."""
    if t.device.type != "cuda":
        return t.numpy().copy()
    host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    host.copy_(t, non_blocking=True)
    lane.wait()
    return host.numpy().copy()


def on_device(image: Any, device: torch.device) -> torch.Tensor:
    """An HxWx3 uint8 image (array or tensor) as a tensor on ``device``."""
    if isinstance(image, torch.Tensor):
        return image.to(device, non_blocking=True)
    return torch.from_numpy(np.ascontiguousarray(image)).to(device, non_blocking=True)


def _inverse(m: np.ndarray) -> np.ndarray:
    """cv::invertAffineTransform of each (N, 2, 3) matrix, in the same float64 steps."""
    d = m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]
    d = np.divide(1.0, d, out=np.zeros_like(d), where=d != 0)
    a11, a22, a12, a21 = m[:, 1, 1] * d, m[:, 0, 0] * d, -m[:, 0, 1] * d, -m[:, 1, 0] * d
    b1, b2 = -a11 * m[:, 0, 2] - a12 * m[:, 1, 2], -a21 * m[:, 0, 2] - a22 * m[:, 1, 2]
    return np.stack([np.stack([a11, a12, b1], 1), np.stack([a21, a22, b2], 1)], 1)


def warp_crops(
    images: Sequence[torch.Tensor], owner: Sequence[int], matrices: np.ndarray, size: int
) -> torch.Tensor:
    """``cv2.warpAffine(images[owner[i]], matrices[i], (size, size))`` (bilinear, black border) for
    every face i at once, on the images' device: (N, size, size, 3) uint8."""
    device = images[0].device if images else torch.device("cpu")
    if len(owner) == 0:
        return torch.zeros((0, size, size, 3), dtype=torch.uint8, device=device)
    flat = torch.cat([img.reshape(-1, 3) for img in images])
    starts = np.cumsum([0] + [img.shape[0] * img.shape[1] for img in images])[:-1]
    dims = np.array([img.shape[:2] for img in images], np.int64)[list(owner)]  # (N, 2): h, w
    inv = _inverse(np.asarray(matrices, np.float64)).astype(np.float32)
    meta = np.stack([starts[list(owner)], dims[:, 0], dims[:, 1]], axis=1)
    m = torch.from_numpy(inv).to(device, non_blocking=True)[:, :, :, None, None]  # (N, 2, 3, 1, 1)
    info = torch.from_numpy(meta).to(device, non_blocking=True)[:, :, None, None]  # (N, 3, 1, 1)
    steps = torch.arange(size, device=device, dtype=torch.float32)
    ys, xs = steps[:, None], steps[None, :]
    src = m[:, :, 0] * xs + m[:, :, 1] * ys + m[:, :, 2]  # (N, 2, size, size): x, y in the image
    corner = torch.floor(src)
    frac = (src - corner)[..., None]
    x0, y0 = corner[:, 0].to(torch.int64), corner[:, 1].to(torch.int64)
    fx, fy = frac[:, 0], frac[:, 1]
    top = (1 - fx) * _tap(flat, info, x0, y0) + fx * _tap(flat, info, x0 + 1, y0)
    bottom = (1 - fx) * _tap(flat, info, x0, y0 + 1) + fx * _tap(flat, info, x0 + 1, y0 + 1)
    out = (1 - fy) * top + fy * bottom
    return torch.round(out).clamp_(0, 255).to(torch.uint8)


def _tap(flat: torch.Tensor, info: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One bilinear neighbour's pixels as float32; 0 (the border colour) outside its image."""
    start, h, w = info[:, 0], info[:, 1], info[:, 2]
    inside = (x >= 0) & (y >= 0) & (x < w) & (y < h)
    index = torch.where(inside, start + y * w + x, 0)
    return flat[index].to(torch.float32) * inside[..., None]


@lru_cache(maxsize=64)
def area_weights(source: int, target: int) -> np.ndarray:
    """(target, source) float32 weights of OpenCV's INTER_AREA downscale along one axis
    (computeResizeAreaTab), each row summing to 1."""
    scale = source / target
    out = np.zeros((target, source), np.float64)
    for dx in range(target):
        f1 = dx * scale
        f2 = f1 + scale
        cell = min(scale, source - f1)
        s1, s2 = int(np.ceil(f1)), int(np.floor(f2))
        s2 = min(s2, source - 1)
        s1 = min(s1, s2)
        if s1 - f1 > 1e-3:
            out[dx, s1 - 1] = (s1 - f1) / cell
        out[dx, s1:s2] = 1.0 / cell
        if f2 - s2 > 1e-3:
            out[dx, s2] = min(f2 - s2, 1.0, cell) / cell
    return out.astype(np.float32)


_WEIGHTS: dict[tuple[int, int, str], torch.Tensor] = {}


def _weights(source: int, target: int, device: torch.device) -> torch.Tensor:
    key = (source, target, str(device))
    if key not in _WEIGHTS:  # a few sizes per server: uploaded once
        _WEIGHTS[key] = torch.from_numpy(area_weights(source, target)).to(device)
    return _WEIGHTS[key]


def area_squares(images: torch.Tensor, size: int) -> torch.Tensor:
    """Images of one size (N, H, W, 3) padded to a square (bottom and right, zeros) and shrunk to
    ``size`` x ``size`` with INTER_AREA: (N, size, size, 3) uint8 on their device. Needs a side of
    at least ``size``."""
    h, w = int(images.shape[1]), int(images.shape[2])
    side = max(h, w)
    if side < size:
        raise ValueError(f"area_square shrinks only: side {side} < {size}")
    weights = _weights(side, size, images.device)
    rows, cols = weights[:, :h], weights[:, :w]
    out = torch.einsum("yh,nhwc,xw->nyxc", rows, images.to(torch.float32), cols)
    return torch.floor(out + 0.5).clamp_(0, 255).to(torch.uint8)


def area_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """``area_squares`` of one HxWx3 image."""
    return area_squares(image[None], size)[0]


def device_squares(
    images: Sequence[torch.Tensor], size: int, fallback: Callable[[np.ndarray], np.ndarray]
) -> torch.Tensor:
    """BlazeFace's (N, size, size, 3) input of device images, made on the caller's current stream,
    one batch per image size; an image smaller than ``size`` (INTER_AREA enlarges differently) goes
    through ``fallback`` on CPU."""
    if not images:
        return torch.zeros((0, size, size, 3), dtype=torch.uint8)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, img in enumerate(images):
        groups.setdefault((int(img.shape[0]), int(img.shape[1])), []).append(i)
    out = torch.empty((len(images), size, size, 3), dtype=torch.uint8, device=images[0].device)
    for (h, w), members in groups.items():
        if max(h, w) >= size:
            out[members] = area_squares(torch.stack([images[i] for i in members]), size)
        else:
            for i in members:
                out[i] = on_device(fallback(images[i].cpu().numpy()), out.device)
    return out


def device_crops(crops: Sequence[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
    """(N, h, w, 3) uint8 of HxWx3 device crops, each at the embedder's input ``size`` (h, w): a crop
    of another size is resized bilinearly (half-pixel centres, as cv2's INTER_LINEAR)."""
    h, w = int(size[0]), int(size[1])
    out = []
    for c in crops:
        if tuple(c.shape[:2]) == (h, w):
            out.append(c)
            continue
        x = c.permute(2, 0, 1)[None].float()
        x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        out.append(torch.round(x[0]).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0))
    return torch.stack(out)


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation of a JPEG (1 when it has none): nvJPEG does not apply it, OpenCV does."""
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker == 0xDA:  # start of scan: no more metadata
            break
        body = data[i + 4 : i + 2 + length]
        if marker == 0xE1 and body[:6] == b"Exif\x00\x00":
            return _tiff_orientation(body[6:])
        i += 2 + length
    return 1


def _tiff_orientation(tiff: bytes) -> int:
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return 1
    end = "<" if tiff[:2] == b"II" else ">"
    ifd = struct.unpack(end + "I", tiff[4:8])[0]
    if ifd + 2 > len(tiff):
        return 1
    count = struct.unpack(end + "H", tiff[ifd : ifd + 2])[0]
    for k in range(count):
        at = ifd + 2 + 12 * k
        if at + 12 > len(tiff):
            break
        tag, _kind, _n, value = struct.unpack(end + "HHIH", tiff[at : at + 10])
        if tag == 0x0112:
            return int(value)
    return 1


def decode_jpegs(blobs: Sequence[bytes], device: torch.device) -> list[torch.Tensor | None]:
    """JPEG bytes -> HxWx3 uint8 RGB tensors on ``device``, the whole list in one nvJPEG call; if that
    call fails, one at a time, None for each file nvJPEG refuses (the caller decodes those on CPU)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    data = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
    try:
        return [t.permute(1, 2, 0) for t in decode_jpeg(data, mode=ImageReadMode.RGB, device=device)]
    except RuntimeError:
        pass
    out: list[torch.Tensor | None] = []
    for d in data:
        try:
            out.append(decode_jpeg(d, mode=ImageReadMode.RGB, device=device).permute(1, 2, 0))
        except RuntimeError:
            out.append(None)
    return out
