"""The face API's operations as the gRPC service ``facepipe.v1.Face`` (protos/face_service.proto):
the same handlers as HTTP, the same JSON documents, errors as gRPC statuses."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from facepipe.auth import HEADER
from facepipe.errors import InvalidInput, as_facepipe_error
from facepipe.operations import MAX_IMAGES, Binary, Inputs, Operation, inputs_from_json, rpc_name
from facepipe.protos import face_service_pb2 as pb
from facepipe.serving.http import dumps
from facepipe.serving.metrics import Metrics

SERVICE = "facepipe.v1.Face"


def request_inputs(request: Any, metadata: Sequence[tuple[str, Any]]) -> Inputs:
    if len(request.images) > MAX_IMAGES:
        raise InvalidInput(f"{len(request.images)} images in one request; the limit is {MAX_IMAGES}")
    try:
        doc = json.loads(request.json) if request.json else {}
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"json: not valid JSON: {exc}") from None
    inputs = inputs_from_json(doc, dict(request.params))
    inputs.images = list(request.images) + inputs.images
    inputs.path = {"sid": request.subject, "fid": str(request.face)}
    inputs.api_key = next((str(v) for k, v in metadata if k == HEADER), None)
    return inputs


def _method(op: Operation, metrics: Metrics) -> Callable[[Any, Any], Any]:
    async def call(request: Any, context: Any) -> Any:
        t0, status = time.perf_counter(), "ok"
        try:
            out = await op.handler(request_inputs(request, context.invocation_metadata() or ()))
            if isinstance(out, Binary):
                return pb.FaceReply(data=out.data, media_type=out.media_type)
            return pb.FaceReply(json=dumps(out).decode())
        except Exception as exc:
            err = as_facepipe_error(exc)
            status = err.code
            await context.abort(getattr(grpc.StatusCode, err.grpc_status), err.message)
        finally:
            metrics.observe(f"grpc-v1:{op.name}", status, time.perf_counter() - t0)

    return call


def handler(ops: Sequence[Operation], metrics: Metrics) -> grpc.GenericRpcHandler:
    methods = {
        rpc_name(op): grpc.unary_unary_rpc_method_handler(
            _method(op, metrics),
            request_deserializer=pb.FaceRequest.FromString,
            response_serializer=pb.FaceReply.SerializeToString,
        )
        for op in ops
    }
    return grpc.method_handlers_generic_handler(SERVICE, methods)
