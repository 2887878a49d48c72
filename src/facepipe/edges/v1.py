"""The face API's operations as HTTP ``/v1`` routes (their OpenAPI document: edges/docs.py).

Images come as multipart files (any field name, in order), a raw ``image/*`` body, or JSON
(``{"images": ["<base64>", ...]}`` or ``{"image": "<base64>"}``); parameters from the query string,
JSON fields or form fields. Errors answer their status with ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import json

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from facepipe.api.auth import HEADER
from facepipe.api.operation import MAX_IMAGES, Binary, Inputs, Operation, inputs_from_json
from facepipe.edges.http import JsonResponse, read_body
from facepipe.edges.observe import Edge
from facepipe.errors import FacepipeError, InvalidInput, PayloadTooLarge


async def read_inputs(request: Request, limit: int) -> Inputs:
    params: dict[str, object] = dict(request.query_params)
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


def v1_error(err: FacepipeError, _: Request) -> Response:
    return JsonResponse({"error": {"code": err.code, "message": err.message}}, status_code=err.http_status)


def v1_route(op: Operation, edge: Edge, limit: int) -> Route:
    async def route(request: Request) -> Response:
        inputs = await read_inputs(request, limit)
        inputs.path = dict(request.path_params)
        inputs.api_key = request.headers.get(HEADER)
        out = await op.handler(inputs)
        if isinstance(out, Binary):
            return Response(out.data, media_type=out.media_type)
        return JsonResponse(out, status_code=op.status)

    return edge.route(op.path, route, f"v1:{op.name}", v1_error, [op.method])
