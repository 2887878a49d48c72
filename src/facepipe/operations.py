"""The face API's operations, written once and served on two edges: HTTP (``/v1`` routes, here) and
gRPC (``facepipe.v1.Face``, in ``face_grpc``).

An operation is an async function of ``Inputs`` (images, parameters, embeddings, path values, API
key) that answers a JSON document, or ``Binary`` for an image. HTTP reads images as multipart files
(any field name, in order), a raw ``image/*`` body, or JSON (``{"images": ["<base64>", ...]}`` or
``{"image": "<base64>"}``); parameters from the query string, JSON fields or form fields. Errors
answer their status with ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from facepipe.auth import HEADER
from facepipe.errors import FacepipeError, InvalidInput, PayloadTooLarge, as_facepipe_error
from facepipe.face.decode import b64decode
from facepipe.serving.http import JsonResponse, read_body
from facepipe.serving.metrics import Metrics

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


async def read_inputs(request: Request, limit: int) -> Inputs:
    params: dict[str, Any] = dict(request.query_params)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {limit}")
        form = await request.form(max_files=MAX_IMAGES, max_fields=64)
        images = [await v.read() for _, v in form.multi_items() if isinstance(v, UploadFile)]
        params |= {k: v for k, v in form.multi_items() if isinstance(v, str)}
        return Inputs(images, params)
    body = await read_body(request, limit)
    if kind.startswith("image/") or kind == "application/octet-stream":
        return Inputs([body], params)
    try:
        doc = json.loads(body) if body else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"request is not valid JSON: {exc}") from None
    return inputs_from_json(doc, params)


def error_response(err: FacepipeError) -> JsonResponse:
    return JsonResponse({"error": {"code": err.code, "message": err.message}}, status_code=err.http_status)


def http_route(op: Operation, metrics: Metrics, limit: int) -> Route:
    async def route(request: Request) -> Response:
        t0, status = time.perf_counter(), "ok"
        try:
            inputs = await read_inputs(request, limit)
            inputs.path = dict(request.path_params)
            inputs.api_key = request.headers.get(HEADER)
            out = await op.handler(inputs)
            if isinstance(out, Binary):
                return Response(out.data, media_type=out.media_type)
            return JsonResponse(out, status_code=op.status)
        except Exception as exc:
            err = as_facepipe_error(exc)
            status = err.code
            return error_response(err)
        finally:
            metrics.observe(f"v1:{op.name}", status, time.perf_counter() - t0)

    return Route(op.path, route, methods=[op.method])
