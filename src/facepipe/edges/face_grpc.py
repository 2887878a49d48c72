"""The face API's operations as the gRPC service ``facepipe.v1.Face`` (protos/face_service.proto):
the same handlers as HTTP, the same JSON documents, errors as gRPC statuses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from facepipe.api import jsondoc
from facepipe.api.auth import HEADER
from facepipe.api.operation import MAX_IMAGES, Binary, Inputs, Operation, inputs_from_json, rpc_name
from facepipe.edges.http import dumps
from facepipe.edges.observe import Edge, RpcMethod
from facepipe.errors import InvalidInput
from facepipe.protos import face_service_pb2 as pb

SERVICE = "facepipe.v1.Face"


async def request_inputs(request: Any, metadata: Sequence[tuple[str, Any]]) -> Inputs:
    if len(request.images) > MAX_IMAGES:
        raise InvalidInput(f"{len(request.images)} images in one request; the limit is {MAX_IMAGES}")
    doc = await jsondoc.aloads(request.json.encode("utf-8", "surrogatepass"), "json") if request.json else {}
    inputs = inputs_from_json(doc, dict(request.params))
    inputs.images = list(request.images) + inputs.images
    inputs.path = {"sid": request.subject, "fid": str(request.face), "collection": request.collection}
    inputs.api_key = next((str(v) for k, v in metadata if k == HEADER), None)
    return inputs


def methods(ops: Sequence[Operation], edge: Edge) -> dict[str, RpcMethod]:
    """Every operation as a gRPC method of ``facepipe.v1.Face``, by RPC name (wrapped by ``Edge.rpc``)."""

    def method(op: Operation) -> RpcMethod:
        async def call(request: Any, context: Any) -> Any:
            out = await op.handler(await request_inputs(request, context.invocation_metadata() or ()))
            if isinstance(out, Binary):
                return pb.FaceReply(data=out.data, media_type=out.media_type)
            return pb.FaceReply(json=dumps(out).decode())

        return edge.rpc(call, f"grpc-v1:{op.name}")

    return {rpc_name(op): method(op) for op in ops if op.rpc}


def handler(rpcs: dict[str, RpcMethod]) -> grpc.GenericRpcHandler:
    """The methods of ``methods`` as the service ``facepipe.v1.Face`` of a gRPC server."""
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            call,
            request_deserializer=pb.FaceRequest.FromString,
            response_serializer=pb.FaceReply.SerializeToString,
        )
        for name, call in rpcs.items()
    }
    return grpc.method_handlers_generic_handler(SERVICE, handlers)
