"""The face API's own operations: detect, embed and verify over photos or aligned crops (served on
HTTP ``/v1`` and gRPC by ``facepipe.api.operation``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from facepipe.api.gate import Gate, gate_params, refusal
from facepipe.api.limits import PixelBudget
from facepipe.api.operation import MAX_IMAGES, Answer, Inputs, Operation
from facepipe.config import FaceConfig
from facepipe.engine.pipeline import Pipeline
from facepipe.errors import InvalidInput, UnusableFace
from facepipe.face.faces import DetectParams, Face, Photo
from facepipe.models.versions import Versions


@dataclass(slots=True)
class FaceService:
    photos: dict[str, Pipeline]  # detector name -> photo pipeline
    crops: Versions[Any]  # versions of the seed's ArcFace service: aligned crop -> embedding
    defaults: FaceConfig
    model: dict[str, str]  # embedder name and version
    dim: int  # embedding size
    spoof_above: float | None  # None: no liveness model installed
    max_body_bytes: int
    authorize: Callable[[str | None], None] = lambda _key: None  # auth.protect_inference
    budget: PixelBudget = field(default_factory=PixelBudget)  # face.max_request/inflight_pixels


def number(raw: dict[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    value = raw.get(key, default)
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{key}: expected a number, got {value!r}") from None
    if not lo <= x <= hi:
        raise InvalidInput(f"{key}: {x} is outside [{lo}, {hi}]")
    return x


def flag(raw: dict[str, Any], key: str) -> bool:
    value = raw.get(key, False)
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("1", "true", "yes", "on"):
        return True
    if str(value).lower() in ("0", "false", "no", "off", ""):
        return False
    raise InvalidInput(f"{key}: expected true or false, got {value!r}")


def detect_params(svc: FaceService, raw: dict[str, Any]) -> tuple[str, DetectParams]:
    d = svc.defaults
    detector = str(raw.get("detector", d.detector))
    if detector not in svc.photos:
        raise InvalidInput(f"detector {detector!r} is not available; available: {sorted(svc.photos)}")
    liveness = flag(raw, "liveness")
    if liveness and svc.spoof_above is None:
        raise InvalidInput("liveness was requested but the anti-spoofing model 'antispoof' is not installed")
    p1, p2, p3 = d.thresholds
    p3 = d.blazeface_threshold if detector in ("blazeface", "blazeface_full") else p3
    params = DetectParams(
        min_face_size=number(raw, "min_face_size", d.min_face_size, 12, 100_000),
        thresholds=(p1, p2, number(raw, "det_threshold", p3, 0, 1)),
        max_faces=int(number(raw, "max_faces", d.max_faces, 0, 10_000)),
        liveness=liveness,
    )
    return detector, params


def face_json(face: Face, spoof_above: float | None, embedding: bool) -> dict[str, Any]:
    x1, y1, x2, y2 = face.box
    out: dict[str, Any] = {
        "box": {"x1": round(x1, 2), "y1": round(y1, 2), "x2": round(x2, 2), "y2": round(y2, 2)},
        "score": round(face.score, 5),
        "size": round(face.size, 2),
        "landmarks": np.round(face.landmarks.astype(np.float64), 2).tolist(),
    }
    if face.quality is not None:
        out["quality"] = face.quality.as_json()
    if face.liveness is not None and spoof_above is not None:
        out["liveness"] = {"score": round(face.liveness, 5), "real": face.liveness <= spoof_above}
    if face.extra:
        out["extra"] = face.extra
    if embedding and face.embedding is not None:
        out["embedding"] = face.embedding  # float32, written by the response's JSON encoder
    return out


def request_gate(svc: FaceService, raw: dict[str, Any], min_quality: float = 0.0) -> Gate:
    """The request's ``min_quality`` / ``require_live`` (defaults: ``min_quality``, face.require_live)."""
    return gate_params(raw, min_quality, svc.defaults.require_live, svc.spoof_above)


def gated(inputs: Inputs, gate: Gate) -> Inputs:
    """``inputs`` asking for liveness where the gate needs it."""
    if not gate.require_live:
        return inputs
    params = inputs.params | {"liveness": True}
    return Inputs(inputs.images, params, inputs.embeddings, inputs.path, inputs.api_key)


async def run_photos(svc: FaceService, inputs: Inputs) -> list[Photo]:
    if not inputs.images:
        raise InvalidInput("no image in the request (multipart file, raw image body, or JSON 'images')")
    if len(inputs.images) > MAX_IMAGES:
        raise InvalidInput(f"{len(inputs.images)} images in one request; the limit is {MAX_IMAGES}")
    with svc.budget.admit(inputs.images):
        detector, params = detect_params(svc, inputs.params)
        pipeline = svc.photos[detector]
        jobs = [pipeline.submit((img, params, f"image[{i}]")) for i, img in enumerate(inputs.images)]
        return [r.value for r in await asyncio.gather(*jobs)]


def photo_json(svc: FaceService, i: int, photo: Photo, embedding: bool) -> dict[str, Any]:
    h, w = photo.image.shape[:2]
    faces = [face_json(f, svc.spoof_above, embedding) for f in photo.faces]
    return {"image": i, "width": w, "height": h, "faces": faces}


def vector(value: Any, label: str, dim: int) -> np.ndarray:
    """A unit-length embedding of the served model's ``dim`` from a client's list of numbers."""
    if not isinstance(value, list):
        raise InvalidInput(f"{label}: expected a flat list of numbers")
    if len(value) != dim:  # before looking at each value: a 12 MB list is refused at once
        raise InvalidInput(f"{label}: {len(value)} values; the model's embeddings have {dim}")
    if not all(isinstance(x, int | float) for x in value):
        raise InvalidInput(f"{label}: expected a flat list of numbers")
    try:
        v = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput(f"{label}: expected a list of numbers") from None
    if not np.all(np.isfinite(v)):
        raise InvalidInput(f"{label}: expected finite numbers")
    n = float(np.linalg.norm(v))
    if n == 0:
        raise InvalidInput(f"{label}: zero vector")
    return v / n


async def verify(svc: FaceService, inputs: Inputs) -> Answer:
    svc.authorize(inputs.api_key)
    threshold = number(inputs.params, "threshold", svc.defaults.verify_threshold, -1, 1)
    faces: list[dict[str, Any]] = []
    if inputs.embeddings is not None:
        if not isinstance(inputs.embeddings, list) or len(inputs.embeddings) != 2:
            raise InvalidInput("'embeddings' must hold exactly two embeddings")
        a, b = (vector(e, f"embeddings[{i}]", svc.dim) for i, e in enumerate(inputs.embeddings))
        if a.shape != b.shape:
            raise InvalidInput(f"embeddings have different lengths: {a.size} and {b.size}")
    else:
        if len(inputs.images) != 2:
            raise InvalidInput(
                f"verify needs exactly two images (or two 'embeddings'), got {len(inputs.images)}"
            )
        gate = request_gate(svc, inputs.params)
        photos = await run_photos(svc, gated(inputs, gate))
        for i, p in enumerate(photos):
            if not p.faces:
                raise InvalidInput(f"image[{i}]: no face found")
            why = refusal(p.faces[0], gate, svc.spoof_above)
            if why:
                raise UnusableFace(f"image[{i}]: {why}")
        a, b = (np.asarray(p.faces[0].embedding) for p in photos)
        faces = [face_json(p.faces[0], svc.spoof_above, False) for p in photos]
    similarity = float(np.dot(a, b))
    out = {"similarity": round(similarity, 6), "threshold": threshold, "match": similarity >= threshold}
    return out | {"model": svc.model, "faces": faces}


async def embed_crops(svc: FaceService, images: list[bytes]) -> list[np.ndarray]:
    """Aligned 112x112 crops (any size is resized, as the seed does) -> embeddings."""
    if not images:
        raise InvalidInput("no image in the request")
    if len(images) > MAX_IMAGES:
        raise InvalidInput(f"{len(images)} images in one request; the limit is {MAX_IMAGES}")
    with svc.budget.admit(images):
        _, service = svc.crops.pick()
        return [r.value for r in await asyncio.gather(*(service.pipeline.submit(img) for img in images))]


async def detect(svc: FaceService, inputs: Inputs) -> Answer:
    svc.authorize(inputs.api_key)
    photos = await run_photos(svc, inputs)
    return {"results": [photo_json(svc, i, p, False) for i, p in enumerate(photos)]}


async def embed(svc: FaceService, inputs: Inputs) -> Answer:
    svc.authorize(inputs.api_key)
    if flag(inputs.params, "aligned"):
        embs = [e.tolist() for e in await embed_crops(svc, inputs.images)]
        return {"model": svc.model, "results": [{"image": i, "embedding": e} for i, e in enumerate(embs)]}
    photos = await run_photos(svc, inputs)
    return {"model": svc.model, "results": [photo_json(svc, i, p, True) for i, p in enumerate(photos)]}


def face_operations(svc: FaceService) -> list[Operation]:
    return [
        Operation("detect", "POST", "/v1/detect", partial(detect, svc)),
        Operation("embed", "POST", "/v1/embed", partial(embed, svc)),
        Operation("verify", "POST", "/v1/verify", partial(verify, svc)),
    ]
