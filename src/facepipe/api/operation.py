"""The face API's operations, written once and served on two edges: HTTP (``/v1`` routes, edges/v1.py)
and gRPC (``facepipe.v1.Face``, edges/face_grpc.py).

An operation is an async function of ``Inputs`` (images, parameters, embeddings, path values, API
key) that answers a JSON document, or ``Binary`` for an image. HTTP reads images as multipart files
(any field name, in order), a raw ``image/*`` body, or JSON (``{"images": ["<base64>", ...]}`` or
``{"image": "<base64>"}``); parameters from the query string, JSON fields or form fields. Errors
answer their status with ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from facepipe.errors import InvalidInput
from facepipe.face.decode import b64decode

MAX_IMAGES = 64


@dataclass(slots=True)
class Inputs:
    images: list[bytes]
    params: dict[str, Any]
    embeddings: list[Any] | None = None
    path: dict[str, str] = field(default_factory=dict)
    api_key: str | None = None


@dataclass(slots=True)
class Binary:
    data: bytes
    media_type: str


Answer = dict[str, Any] | Binary
Handler = Callable[[Inputs], Awaitable[Answer]]


@dataclass(slots=True)
class Operation:
    name: str  # metric label and gRPC method (CamelCase of it)
    method: str
    path: str
    handler: Handler
    status: int = 200
    rpc: bool = True  # False: HTTP only (a collection-scoped path; gRPC names the collection in a field)


def rpc_name(op: Operation) -> str:
    return "".join(part.capitalize() for part in op.name.replace(":", "_").split("_"))


def _b64(value: Any, label: str) -> bytes:
    decoded = b64decode(value) if isinstance(value, str) else None
    if decoded is None:
        raise InvalidInput(
            f"{label}: not valid base64" if isinstance(value, str) else f"{label}: expected a base64 string"
        )
    return decoded


def inputs_from_json(doc: Any, params: dict[str, Any]) -> Inputs:
    """Images (base64), embeddings and parameters from a JSON object."""
    if not isinstance(doc, dict):
        raise InvalidInput("JSON body must be an object")
    raw = doc.pop("images", None)
    if raw is None and "image" in doc:
        raw = [doc.pop("image")]
    if raw is not None and not isinstance(raw, list):
        raise InvalidInput("'images' must be a list of base64 strings")
    images = [_b64(v, f"image[{i}]") for i, v in enumerate(raw or [])]
    embeddings = doc.pop("embeddings", None)
    return Inputs(images, params | doc, embeddings)
