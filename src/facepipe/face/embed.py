"""Embedding op: face crops in, L2-normalised embeddings out; the whole batch in one model call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from facepipe.models.bundle import Bundle
from facepipe.runtime import CPU, RuntimeSpec, open_session


def resized(crops: list[np.ndarray], bundle: Bundle) -> np.ndarray:
    """RGB uint8 crops at the bundle's input size, stacked (N, H, W, 3)."""
    h, w = bundle.manifest.preprocess.size or [112, 112]
    return np.stack(
        [c if c.shape[:2] == (h, w) else cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR) for c in crops]
    )


def to_tensor(crops: list[np.ndarray], bundle: Bundle) -> np.ndarray:
    """RGB uint8 crops -> the bundle's input tensor (resized, colour order, mean/std, layout)."""
    pre = bundle.manifest.preprocess
    arr = resized(crops, bundle)
    if pre.color.upper() == "BGR":
        arr = arr[..., ::-1]
    x = pre.normalize(arr)
    if bundle.manifest.inputs[0].layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x)


def flip_averaged(embed: Callable[[list[Any]], list[Any]], crops: list[Any]) -> list[np.ndarray]:
    """``face.flip_average``: per crop, the unit-length mean of its embedding and its mirror image's,
    all in one call of ``embed`` (twice the crops)."""
    both = np.asarray(embed(crops + [_mirror(c) for c in crops]), np.float32)
    mean = both[: len(crops)] + both[len(crops) :]
    mean /= np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-10)
    return list(mean)


def _mirror(crop: Any) -> Any:
    """The crop flipped left to right: an array, or a tensor on the GPU (align ran there)."""
    if isinstance(crop, np.ndarray):
        return np.ascontiguousarray(crop[:, ::-1])
    return crop.flip(1)


class EmbedOp:
    """Batch of crops (HxWx3 uint8 RGB: arrays, or tensors on the GPU) -> batch of embeddings (float32,
    unit length)."""

    def __init__(self, bundle: Bundle, runtime: RuntimeSpec = CPU) -> None:
        self.bundle = bundle
        self.runtime = runtime
        self.session: Any = None
        self.lane: Any = None  # face/device.py Lane, made on the first batch of device crops

    def setup(self) -> None:
        self.session = open_session(self.bundle, self.runtime)

    def _on_device(self, crops: list[Any]) -> np.ndarray:
        from facepipe.face.device import Lane, device_crops

        self.lane = self.lane or Lane(crops[0].device)
        with self.lane:  # stacked on a stream of this op's own; the session's stream waits for it
            pixels = device_crops(crops, self.bundle.manifest.preprocess.size or [112, 112])
            if hasattr(self.session, "run_pixels"):
                out: np.ndarray = self.session.run_pixels(pixels)[0]
                return out
        host = list(pixels.cpu().numpy())  # the embedder runs on CPU: the crops come back
        out = self.session.run({self.session.input_names[0]: to_tensor(host, self.bundle)})[0]
        return out

    def __call__(self, batch: list[Any]) -> list[Any]:
        if self.session is None:
            raise RuntimeError("EmbedOp.setup() was not called")
        if batch and not isinstance(batch[0], np.ndarray):  # crops on the GPU (decode or align ran there)
            emb = self._on_device(batch)
        elif hasattr(self.session, "run_pixels"):  # normalised on the device
            emb = self.session.run_pixels(resized(batch, self.bundle))[0]
        else:
            emb = self.session.run({self.session.input_names[0]: to_tensor(batch, self.bundle)})[0]
        if not self.bundle.manifest.normalized:
            emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-10)
        return list(emb.astype(np.float32))
