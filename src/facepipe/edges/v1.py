"""The face API's operations as HTTP ``/v1`` routes (their OpenAPI document: edges/docs.py).

Images come as multipart files (any field name, in order), a raw ``image/*`` body, or JSON
(``{"images": ["<base64>", ...]}`` or ``{"image": "<base64>"}``); parameters from the query string,
JSON fields or form fields. Errors answer their status with ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message

from facepipe.api import jsondoc
from facepipe.api.auth import HEADER
from facepipe.api.operation import MAX_IMAGES, Binary, Inputs, Operation, inputs_from_json
from facepipe.edges.http import JsonResponse, read_body
from facepipe.edges.observe import Edge
from facepipe.errors import FacepipeError, InvalidInput

MAX_FIELDS = 64  # multipart form fields (files count against MAX_IMAGES)


async def read_inputs(request: Request, limit: int) -> Inputs:
    params: dict[str, object] = dict(request.query_params)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await read_body(request, limit)  # the one body limit: declared and streamed alike
    if kind == "multipart/form-data":
        images, fields = await read_form(request, body)
        return Inputs(images, params | fields)
    if kind.startswith("image/") or kind == "application/octet-stream":
        return Inputs([body], params)
    doc = await jsondoc.aloads(body) if body else {}
    return inputs_from_json(doc, params)


async def read_form(request: Request, body: bytes) -> tuple[list[bytes], dict[str, str]]:
    """Files (in order) and fields of a multipart body already read within the limit."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=MAX_IMAGES, max_fields=MAX_FIELDS)
    except (MultiPartException, HTTPException) as exc:
        detail = exc.message if isinstance(exc, MultiPartException) else exc.detail
        raise InvalidInput(f"multipart body: {detail}") from None
    images = [await v.read() for _, v in form.multi_items() if isinstance(v, UploadFile)]
    return images, {k: v for k, v in form.multi_items() if isinstance(v, str)}


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
