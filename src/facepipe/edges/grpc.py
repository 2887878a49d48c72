"""gRPC edge: the seed ``PipelineService`` and KServe v2 ``inference.GRPCInferenceService``.

Errors are translated here, once: the seed service answers ``err_no`` in its Response (as the seed
does; overload is UNAVAILABLE so that clients can back off), KServe answers the error's gRPC status.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
import numpy as np

from facepipe.api.auth import HEADER
from facepipe.edges import face_grpc, kserve, seed
from facepipe.edges.kserve import metadata
from facepipe.edges.observe import Edge, RpcLabel, RpcMethod, abort
from facepipe.edges.state import ServerState
from facepipe.errors import FacepipeError, InvalidInput, NotFound, Overloaded
from facepipe.models.control import ModelControl
from facepipe.models.versions import VARIANT
from facepipe.protos import grpc_predict_v2_pb2 as pb
from facepipe.protos import grpc_predict_v2_pb2_grpc as pb_grpc
from facepipe.protos import pipeline_service_pb2 as seed_pb
from facepipe.protos import pipeline_service_pb2_grpc as seed_grpc

log = logging.getLogger(__name__)
CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


async def _seed_error(err: FacepipeError, context: Any) -> Any:
    """The seed answers ``err_no`` in its Response; overload is UNAVAILABLE so that clients back off."""
    if isinstance(err, Overloaded):
        await abort(err, context)
    return seed_pb.Response(err_no=err.seed_err_no, err_msg=err.message)


class SeedServicer(seed_grpc.PipelineServiceServicer):
    def __init__(self, state: ServerState, edge: Edge) -> None:
        self.state = state
        label: RpcLabel = lambda r: state.label("grpc-seed", self._name(r))  # noqa: E731
        setattr(self, "inference", edge.rpc(self._inference, label, _seed_error))  # noqa: B010

    def _name(self, request: Any) -> str:
        # The seed's RPC client names no service: a server with one seed service answers with it.
        default = next(iter(self.state.seed)) if len(self.state.seed) == 1 else ""
        return str(request.name or default)

    async def _inference(self, request: Any, context: Any) -> Any:
        meta = dict(context.invocation_metadata() or ())
        self.state.authorize_inference(meta.get(HEADER))
        feed = seed.feed_of(list(request.key), list(request.value))
        sticky = meta.get(self.state.sticky_header)
        reply = await seed.predict(self.state, self._name(request), feed, as_json=False, sticky=sticky)
        await context.send_initial_metadata(((VARIANT, reply.variant),))
        values = [v if isinstance(v, str) else str(v) for v in reply.values]
        return seed_pb.Response(err_no=0, err_msg="", key=reply.keys, value=values)


def request_inputs(request: Any) -> dict[str, np.ndarray]:
    """Inputs of a ModelInferRequest, from ``raw_input_contents`` or typed ``contents``."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise InvalidInput(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs")
    inputs = {}
    for i, t in enumerate(request.inputs):
        spec: dict[str, Any] = {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
        field = CONTENTS.get(t.datatype)
        if not raw and field is not None:
            spec["data"] = list(getattr(t.contents, field))
        inputs[t.name] = kserve.tensor(spec, raw[i] if i < len(raw) else None)
    return inputs


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """KServe v2 over gRPC; every method goes through ``Edge.rpc`` (timed, counted, errors as statuses)."""

    def __init__(self, state: ServerState, edge: Edge, server_version: str) -> None:
        self.state, self.server_version = state, server_version

        def model(kind: str) -> RpcLabel:
            return lambda r: state.label(kind, r.name)

        wrap: dict[str, RpcLabel] = {
            "ServerLive": "grpc-v2:live",
            "ServerReady": "grpc-v2:ready",
            "ServerMetadata": "grpc-v2:server",
            "ModelReady": model("grpc-v2-ready"),
            "ModelMetadata": model("grpc-v2-meta"),
            "ModelInfer": lambda r: state.label("grpc-v2", r.model_name),
            "RepositoryIndex": "grpc-v2:repository",
            "RepositoryModelLoad": "grpc-v2:repository",
            "RepositoryModelUnload": "grpc-v2:repository",
        }
        for name, label in wrap.items():
            setattr(self, name, edge.rpc(getattr(self, name), label))

    async def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=self.state.healthy())

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        ext = ["binary_tensor_data", "model_repository"]
        return pb.ServerMetadataResponse(name="facepipe", version=self.server_version, extensions=ext)

    async def ModelReady(self, request: Any, context: Any) -> Any:
        model = self.state.model(request.name, request.version or None)
        return pb.ModelReadyResponse(ready=model.ready() and self.state.healthy())

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        model = self.state.model(request.name, request.version or None)
        meta = metadata(model, self.state.models[request.name].names())
        spec = pb.ModelMetadataResponse.TensorMetadata
        tensors = {k: [spec(**t) for t in meta[k]] for k in ("inputs", "outputs")}
        return pb.ModelMetadataResponse(
            name=meta["name"], versions=meta["versions"], platform=meta["platform"], **tensors
        )

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        meta = dict(context.invocation_metadata() or ())
        self.state.authorize_inference(meta.get(HEADER))
        sticky = meta.get(self.state.sticky_header)
        model = self.state.model(request.model_name, request.model_version or None, sticky)
        outputs = await model.infer(request_inputs(request))
        names = kserve.pick_outputs(model.name, [o.name for o in request.outputs], outputs)
        response = pb.ModelInferResponse(model_name=model.name, model_version=model.version, id=request.id)
        for out in names:
            datatype, blob = kserve.tensor_bytes(outputs[out])
            tensor = response.outputs.add(name=out, datatype=datatype)
            tensor.shape.extend(outputs[out].shape)
            response.raw_output_contents.append(blob)
        return response

    async def RepositoryIndex(self, request: Any, context: Any) -> Any:
        models = [pb.RepositoryIndexResponse.ModelIndex(**row) for row in self.state.index()]
        return pb.RepositoryIndexResponse(models=models)

    async def _control(self, request: Any, context: Any) -> tuple[ModelControl, str, int | None]:
        meta = dict(context.invocation_metadata() or ())
        self.state.authorize(meta.get(HEADER))
        if self.state.control is None:
            raise NotFound("model control is not enabled on this server")
        param = request.parameters.get("version") if "version" in request.parameters else None
        raw = (
            None if param is None else getattr(param, param.WhichOneof("parameter_choice") or "string_param")
        )
        if raw is not None and not str(raw).isdigit():
            raise InvalidInput(f"version: expected a number, got {raw!r}")
        return (
            self.state.control,
            self.state.control.resolve(request.model_name),
            None if raw is None else int(raw),
        )

    async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:
        control, model, version = await self._control(request, context)
        outcome = await control.sync(model, pin=version, explicit=True)
        rejected = [f"version {v} {o}" for v, o in outcome.items() if o.startswith("rejected")]
        if rejected:
            raise InvalidInput(f"{model}: " + "; ".join(rejected))
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:
        control, model, version = await self._control(request, context)
        await control.unload(model, version)
        return pb.RepositoryModelUnloadResponse()


class GrpcEdge:
    """The gRPC listener, started and stopped with the HTTP server; ``face``: the face API's methods
    (``facepipe.v1.Face``), by RPC name."""

    def __init__(
        self,
        state: ServerState,
        edge: Edge,
        host: str,
        port: int,
        server_version: str = "",
        face: dict[str, RpcMethod] | None = None,
    ) -> None:
        self.state, self.edge, self.address = state, edge, f"{host}:{port}"
        self.server_version, self.face = server_version, face
        self.seed = SeedServicer(state, edge)
        self.inference = InferenceServicer(state, edge, server_version)
        self.server: grpc.aio.Server | None = None

    def methods(self) -> dict[str, RpcMethod]:
        """Every method of the three services by its RPC name (unique across them), for a host that
        routes RPCs by name (Ray Serve's gRPC proxy)."""
        kserve_names = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods_by_name
        calls: dict[str, RpcMethod] = {"inference": getattr(self.seed, "inference")}  # noqa: B009
        calls.update({name: getattr(self.inference, name) for name in kserve_names})
        calls.update(self.face or {})
        return calls

    async def start(self) -> None:
        limit = self.state.max_body_bytes
        options = [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", -1)]
        server = grpc.aio.server(options=options)
        seed_grpc.add_PipelineServiceServicer_to_server(self.seed, server)  # type: ignore[no-untyped-call]
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(self.inference, server)  # type: ignore[no-untyped-call]
        if self.face:  # the face API
            server.add_generic_rpc_handlers((face_grpc.handler(self.face),))
        if server.add_insecure_port(self.address) == 0:
            raise OSError(f"cannot bind gRPC to {self.address}")
        await server.start()
        self.server = server
        log.info("serving gRPC on %s", self.address)

    async def stop(self, grace_s: float) -> None:
        if self.server is not None:
            await self.server.stop(grace_s)
