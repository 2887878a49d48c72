"""The client's records written back in the server's JSON shapes, so that a face reads the same
everywhere: HTTP and gRPC replies, ``facepipe ... --json``, and a script that dumps what it got.
``box`` is ``{"x1", "y1", "x2", "y2"}``, ``liveness`` is ``{"score", "real"}`` and only there when
asked, ``quality`` is ``{"score", "sharpness", "yaw", "pitch", "roll", "size", "confidence"}``,
``embedding`` only on embed, ``matches`` and ``refused`` only on identify; nothing is written as null."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from facepipe.client.calls import DetectedFace, ImageResult, Verification


def face_json(face: DetectedFace) -> dict[str, Any]:
    x1, y1, x2, y2 = face.box
    out: dict[str, Any] = {
        "box": {"x1": x1, "y1": y1, "x2": x2, "y2": y2},
        "score": face.score,
        "size": face.size,
        "landmarks": [list(p) for p in face.landmarks],
    }
    if face.quality is not None:
        out["quality"] = face.quality
    if face.liveness is not None:
        out["liveness"] = {"score": face.liveness, "real": face.real}
    if face.embedding is not None:
        out["embedding"] = face.embedding
    if face.matches is not None:
        out["matches"] = [dataclasses.asdict(m) for m in face.matches]
    if face.refused is not None:
        out["refused"] = face.refused
    return out


def to_json(obj: Any) -> Any:
    """Any client result as JSON-ready values in the server's shapes (numpy arrays as lists)."""
    if isinstance(obj, DetectedFace):
        return to_json(face_json(obj))
    if isinstance(obj, ImageResult):
        faces = [to_json(f) for f in obj.faces]
        return {"image": obj.image, "width": obj.width, "height": obj.height, "faces": faces}
    if isinstance(obj, Verification):
        out = {"similarity": obj.similarity, "threshold": obj.threshold, "match": obj.match}
        return out | {"model": obj.model, "faces": [to_json(f) for f in obj.faces]}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, np.ndarray):
        return np.round(obj.astype(np.float64), 6).tolist()
    if isinstance(obj, list | tuple):
        return [to_json(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, np.floating | np.integer):
        return obj.item()
    return obj
