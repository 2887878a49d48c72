"""The photo path's decode and align ops on a GPU, chosen by the seed's ``device_type: 1`` under
``op.decode`` and ``op.align`` (face/pipelines.py). Images and crops stay on the device from decode
to the embedder; the detector's landmarks are the only thing that comes back between them.

- decode: JPEGs through nvJPEG (torchvision) in one call per batch, where torchvision is installed
  and the file carries no EXIF rotation; anything else is decoded on CPU as before and uploaded.
  The limits (bytes, header pixels) are checked on CPU first, as for CPU decoding.
- align: the ArcFace warp of every face of the batch in one gather (face/device.py: warp_crops);
  each face gets its crop on the device (``device_crop``, read by the embed op) and on the host
  (``crop``, for the gallery's kept crops, liveness and user face ops), copied back in one transfer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from facepipe.engine import worker_index
from facepipe.face.align import SIZE, similarity_transforms, template_for
from facepipe.face.decode import DecodeLimits, checked, decode_image
from facepipe.face.device import (
    Lane,
    decode_jpegs,
    exif_orientation,
    has_nvjpeg,
    on_device,
    to_host,
    warp_crops,
)
from facepipe.face.faces import DetectParams, Photo


def worker_device(devices: str) -> torch.device:
    """This stage worker's device of ``devices`` ("cpu", "cuda:0" or "cuda:0,1,...": worker i takes
    the i-th GPU in turn, as model ops do with ``devices``)."""
    kind, _, listed = devices.partition(":")
    indices = [i for i in listed.split(",") if i]
    if kind != "cuda" or len(indices) < 2:
        return torch.device(devices)
    return torch.device(f"cuda:{indices[worker_index() % len(indices)]}")


class DeviceDecodeOp:
    """Image bytes -> HxWx3 uint8 RGB tensors on ``device``; a bad image fails only its own item."""

    def __init__(self, limits: DecodeLimits, device: str, label: str = "image") -> None:
        self.limits, self.devices, self.label = limits, device, label
        self.device = torch.device("cpu")
        self.lane: Lane | None = None
        self.nvjpeg = False

    def setup(self) -> None:
        self.device = worker_device(self.devices)
        self.lane = Lane(self.device)
        self.nvjpeg = self.device.type == "cuda" and has_nvjpeg()

    def decode(self, blobs: list[bytes], labels: list[str]) -> list[Any]:
        if self.lane is None:
            raise RuntimeError("DeviceDecodeOp.setup() was not called")
        out: list[Any] = [None] * len(blobs)
        gpu: list[int] = []
        for i, (data, label) in enumerate(zip(blobs, labels, strict=True)):
            try:
                kind = checked(data, self.limits, label)
            except Exception as exc:
                out[i] = exc
                continue
            if self.nvjpeg and kind == "jpeg" and exif_orientation(data) == 1:
                gpu.append(i)
        with self.lane:
            decoded = decode_jpegs([blobs[i] for i in gpu], self.device) if gpu else []
            for i, image in zip(gpu, decoded, strict=True):
                out[i] = image
            for i, data in enumerate(blobs):
                if out[i] is None:  # not a JPEG nvJPEG takes (or no nvJPEG): decoded on CPU
                    try:
                        out[i] = on_device(decode_image(data, self.limits, labels[i]), self.device)
                    except Exception as exc:
                        out[i] = exc
        self.lane.wait()  # the images are complete before another op's stream reads them
        return out

    def __call__(self, batch: list[Any]) -> list[Any]:
        return self.decode(list(batch), [self.label] * len(batch))


class DevicePhotoDecodeOp(DeviceDecodeOp):
    """``(bytes, DetectParams, label)`` -> Photo whose image is on the device."""

    def __call__(self, batch: list[Any]) -> list[Any]:
        jobs: list[tuple[bytes, DetectParams, str]] = batch
        images = self.decode([j[0] for j in jobs], [j[2] for j in jobs])
        return [
            img if isinstance(img, Exception) else Photo(img, params, label=label)
            for img, (_, params, label) in zip(images, jobs, strict=True)
        ]


class DeviceAlignOp:
    """Every face of every photo in the batch aligned in one warp on ``device``."""

    def __init__(self, device: str) -> None:
        self.devices, self.device = device, torch.device("cpu")
        self.lane: Lane | None = None

    def setup(self) -> None:
        self.device = worker_device(self.devices)
        self.lane = Lane(self.device)

    def __call__(self, batch: list[Photo]) -> list[Photo]:
        if self.lane is None:
            raise RuntimeError("DeviceAlignOp.setup() was not called")
        owners = [k for k, p in enumerate(batch) for _ in p.faces]
        if not owners:
            return batch
        points = [np.asarray(f.landmarks, np.float64).reshape(-1, 2) for p in batch for f in p.faces]
        matrices = np.zeros((len(points), 2, 3))
        for k in {len(p) for p in points}:  # one batched fit per landmark count (5, or 4 for BlazeFace)
            idx = [i for i, p in enumerate(points) if len(p) == k]
            matrices[idx] = similarity_transforms(
                np.stack([points[i] for i in idx]), template_for(points[idx[0]])
            )
        with self.lane:
            images = [on_device(p.image, self.device) for p in batch]
            crops = warp_crops(images, owners, matrices, SIZE)
            host = to_host(crops, self.lane)
        faces = (f for p in batch for f in p.faces)
        for i, face in enumerate(faces):
            face.device_crop, face.crop = crops[i], host[i]
        return batch
