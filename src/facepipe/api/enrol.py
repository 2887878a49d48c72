"""What an enrolment keeps of its images: the best face of each photo by the request's no-face and
several-faces policies and the quality/liveness gate (``enrol.min_quality``, ``require_live``), or
aligned crops as they come; each with its embedding, the image's digest and, if kept, a PNG crop."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import cv2
import numpy as np

from facepipe.api.face import FaceService, embed_crops, face_json, flag, gated, request_gate, run_photos
from facepipe.api.gate import refusal
from facepipe.api.operation import Inputs
from facepipe.errors import InvalidInput, UnusableFace
from facepipe.face.decode import DecodeLimits, decode_image
from facepipe.gallery.store import NewFace


def _choice(params: dict[str, Any], key: str, options: tuple[str, ...]) -> str:
    value = str(params.get(key, options[0]))
    if value not in options:
        raise InvalidInput(f"{key}: expected one of {list(options)}, got {value!r}")
    return value


def _png(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return buf.tobytes() if ok else b""


def _stored_crop(i: int, image: bytes) -> bytes:
    return _png(cv2.resize(decode_image(image, DecodeLimits(), f"image[{i}]"), (112, 112)))


async def aligned_faces(
    faces: FaceService, keep_crops: bool, images: list[bytes]
) -> list[tuple[int, NewFace]]:
    """Aligned crops as they come: embedded by the seed pipeline, stored resized to 112x112."""
    embs = await embed_crops(faces, images)
    crops: list[bytes | None] = [None] * len(images)
    if keep_crops:
        crops = list(await asyncio.to_thread(lambda: [_stored_crop(i, b) for i, b in enumerate(images)]))
    return [
        (i, NewFace(e, hashlib.sha256(img).hexdigest(), c))
        for i, (img, e, c) in enumerate(zip(images, embs, crops, strict=True))
    ]


async def faces_to_enrol(
    faces: FaceService, min_quality: float, keep_crops: bool, images: list[bytes], params: dict[str, Any]
) -> tuple[list[tuple[int, NewFace]], list[dict[str, Any]]]:
    """The best face of each image, by the request's no-face and several-faces policies; a face the
    gate refuses (min_quality, require_live) is handled as an image without a face."""
    on_none = _choice(params, "on_no_face", ("error", "skip"))
    on_many = _choice(params, "on_many_faces", ("largest", "error"))
    gate = request_gate(faces, params, min_quality)
    if flag(params, "aligned"):
        if gate.require_live:
            raise InvalidInput("require_live needs photos: aligned crops carry no box to check liveness on")
        return await aligned_faces(faces, keep_crops, images), []
    photos = await run_photos(faces, gated(Inputs(images, params | {"max_faces": 0}), gate))
    chosen, skipped = [], []
    for i, (img, photo) in enumerate(zip(images, photos, strict=True)):
        if not photo.faces:
            if on_none == "error":
                raise InvalidInput(f"image[{i}]: no face found (on_no_face=skip to skip such images)")
            skipped.append({"image": i, "reason": "no face found"})
            continue
        if len(photo.faces) > 1 and on_many == "error":
            raise InvalidInput(
                f"image[{i}]: {len(photo.faces)} faces found (on_many_faces=largest to take one)"
            )
        face = photo.faces[0]  # the largest
        why = refusal(face, gate, faces.spoof_above)
        if why and on_none == "error":
            raise UnusableFace(f"image[{i}]: {why} (on_no_face=skip to skip such images)")
        if why:
            skipped.append({"image": i, "reason": why})
            continue
        quality = face_json(face, faces.spoof_above, False)
        crop = _png(face.crop) if keep_crops and face.crop is not None else None
        emb = np.asarray(face.embedding, np.float32)
        chosen.append((i, NewFace(emb, hashlib.sha256(img).hexdigest(), crop, quality)))
    return chosen, skipped
