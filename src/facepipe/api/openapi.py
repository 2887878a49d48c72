"""The OpenAPI 3 document of the face API (``GET /openapi.json``)."""

from __future__ import annotations

from typing import Any

from facepipe import __version__

_IMAGES = {
    "multipart/form-data": {
        "schema": {"type": "object", "additionalProperties": {"type": "string", "format": "binary"}}
    },
    "image/*": {"schema": {"type": "string", "format": "binary"}},
    "application/json": {
        "schema": {
            "type": "object",
            "properties": {
                "images": {"type": "array", "items": {"type": "string", "format": "byte"}},
                "image": {"type": "string", "format": "byte"},
                "embeddings": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
            },
        }
    },
}


def _q(name: str, kind: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": text,
        "schema": {"type": kind, **extra},
    }


_DETECT = [
    _q("max_faces", "integer", "At most this many faces per image, largest first (0: all).", minimum=0),
    _q("min_face_size", "number", "Smallest face side in pixels (default from config, 40).", minimum=12),
    _q("det_threshold", "number", "Final (O-Net) detection score threshold.", minimum=0, maximum=1),
    _q("liveness", "boolean", "Add the anti-spoofing score to each face."),
    _q("detector", "string", "Detector (mtcnn)."),
]
_FACE = {
    "type": "object",
    "properties": {
        "box": {"type": "object", "properties": {k: {"type": "number"} for k in ("x1", "y1", "x2", "y2")}},
        "score": {"type": "number"},
        "size": {"type": "number"},
        "landmarks": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
        "embedding": {"type": "array", "items": {"type": "number"}},
        "liveness": {
            "type": "object",
            "properties": {"score": {"type": "number"}, "real": {"type": "boolean"}},
        },
    },
}
_ERROR = {
    "description": "Bad input (400), body too large (413), unsupported image format (415), overloaded (503)",
    "content": {
        "application/json": {"schema": {"type": "object", "properties": {"error": {"type": "object"}}}}
    },
}


def _op(summary: str, params: list[dict[str, Any]], result: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "parameters": params,
            "requestBody": {"required": True, "content": _IMAGES},
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": result}}},
                "4XX": _ERROR,
            },
        }
    }


def document() -> dict[str, Any]:
    photos = {
        "type": "object",
        "properties": {
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "image": {"type": "integer"},
                        "width": {"type": "integer"},
                        "height": {"type": "integer"},
                        "faces": {"type": "array", "items": _FACE},
                    },
                },
            }
        },
    }
    verify = {
        "type": "object",
        "properties": {
            k: {"type": t}
            for k, t in (("similarity", "number"), ("threshold", "number"), ("match", "boolean"))
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "facepipe face API", "version": __version__},
        "paths": {
            "/v1/detect": _op("Faces with boxes, scores and 5 landmarks, per image", _DETECT, photos),
            "/v1/embed": _op(
                "Embeddings of the faces in photos, or of aligned crops with aligned=true",
                [*_DETECT, _q("aligned", "boolean", "Images are aligned 112x112 crops: no detection.")],
                photos,
            ),
            "/v1/verify": _op(
                "Two images (largest face of each) or two embeddings: cosine similarity and match",
                [*_DETECT, _q("threshold", "number", "Match threshold (default from config, 0.38).")],
                verify,
            ),
        },
    }
