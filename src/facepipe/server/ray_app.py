"""facepipe as a Ray Serve application (``facepipe serve --engine ray``; docs/config.md ``ray:``).

One deployment; each replica is a whole facepipe server in one Ray actor: every configured pipeline
with its own worker threads/processes and batching, as ``facepipe serve`` runs them (a hop between
deployments costs ~6 ms, so the DAG is never split across them). Ray Serve's proxies are the edges:

- HTTP: the replica's Starlette app is the deployment's ASGI ingress, so every route (seed, KServe v2,
  /v1, /ui, /docs, /metrics) answers through Ray's HTTP proxy unchanged.
- gRPC: Ray's gRPC proxy serves the seed ``PipelineService``, ``inference.GRPCInferenceService`` and
  ``facepipe.v1.Face`` (registered through ``grpc_servicer_functions``) and routes each call to the
  replica method named after the RPC (``/inference.GRPCInferenceService/ModelInfer`` -> ``ModelInfer``;
  the names are unique across the three services). One application per cluster needs no metadata; with
  several, clients send ``application: <ray.app_name>``. Each method is the single server's own handler.
- Admin calls (model load/unload/weights) reach every replica through ``ray_admin``; metrics go out
  through Ray's metrics agents (``ray_metrics``).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import serve

from facepipe.config import Config
from facepipe.edges.grpc import GrpcEdge
from facepipe.edges.observe import RpcMethod
from facepipe.engine import heap
from facepipe.protos import face_service_pb2, grpc_predict_v2_pb2, pipeline_service_pb2
from facepipe.server.app import build_server
from facepipe.server.lifecycle import Server
from facepipe.server.ray_admin import ClusterControl, create_log, log_name
from facepipe.server.ray_metrics import MetricsBridge

log = logging.getLogger(__name__)
SERVICERS = [
    "facepipe.protos.pipeline_service_pb2_grpc.add_PipelineServiceServicer_to_server",
    "facepipe.protos.grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server",
    "facepipe.protos.face_service_pb2_grpc.add_FaceServicer_to_server",
]
RPC_NAMES = [
    m.name
    for pb, service in (
        (pipeline_service_pb2, "PipelineService"),
        (grpc_predict_v2_pb2, "GRPCInferenceService"),
        (face_service_pb2, "Face"),
    )
    for m in pb.DESCRIPTOR.services_by_name[service].methods
]


class AbortError(Exception):
    """``context.abort`` inside a handler: the status is set, the call ends (Ray turns it into the
    status on the client's side). ``Edge.rpc`` knows it by this name, as grpc.aio's own."""


class RpcContext:
    """Ray's gRPC context as the edges use grpc.aio's: metadata in, status or abort out. Ray's proxy
    sends no initial metadata of a replica, so what a handler sends as initial metadata (the seed's
    A/B variant) goes out with the trailing metadata."""

    def __init__(self, ray_context: Any) -> None:
        self.ray = ray_context

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return list(self.ray.invocation_metadata())

    async def send_initial_metadata(self, metadata: Any) -> None:
        self.ray.set_trailing_metadata(list(metadata))

    async def abort(self, code: Any, details: str) -> None:
        self.ray.set_code(code)
        self.ray.set_details(details)
        raise AbortError(details)

    def code(self) -> Any:
        return self.ray.code()


REPLICA_HEADER = "x-facepipe-replica"  # on every HTTP answer: which replica (on which node) gave it


def answered_by(app: Any, who: str) -> Any:
    """``app``, whose responses name the replica and node that answered (``REPLICA_HEADER``)."""
    header = (REPLICA_HEADER.encode(), who.encode())

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        async def send_named(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        await app(scope, receive, send_named if scope["type"] == "http" else send)

    return asgi


@dataclass(slots=True)
class ReplicaSpec:
    """What every replica builds its server from (pickled to each replica)."""

    config: Config
    models_dir: Path
    data_dir: Path
    config_path: Path | None = None
    app_spec: str | None = None


def _rpc(name: str) -> Any:
    async def method(self: FacepipeReplica, request: Any, grpc_context: Any = None) -> Any:
        return await self.rpcs[name](request, RpcContext(grpc_context))

    method.__name__ = name
    return method


class FacepipeReplica:
    """One whole facepipe server inside a Ray Serve replica (no sockets of its own)."""

    async def __init__(self, spec: ReplicaSpec) -> None:  # type: ignore[misc]  # Ray Serve awaits it
        context = serve.get_replica_context()
        self.replica = context.replica_tag
        cfg = spec.config.model_copy(update={"log_dir": str(Path(spec.config.log_dir) / self.replica)})
        user_app = None
        if spec.app_spec:
            from facepipe.server.user_app import load_app

            user_app = load_app(spec.app_spec)
        server = build_server(
            cfg, spec.models_dir, spec.data_dir, config_path=spec.config_path, user_app=user_app
        )
        self.server: Server = server
        grpc_edge = next(p for p in server.components if isinstance(p, GrpcEdge))
        self.parts = [p for p in server.components if p is not grpc_edge]  # Ray's proxy is the listener
        self.rpcs: dict[str, RpcMethod] = grpc_edge.methods()
        admin = ray.get_actor(log_name(context.app_name), namespace="facepipe")
        control, timeout = server.state.control, cfg.ray.admin_timeout_s
        self.cluster = ClusterControl(control, self.replica, admin, timeout) if control else None
        state = server.state
        self.bridge = MetricsBridge(
            state.metrics.registry,
            cfg.ray.metrics_interval_s,
            lambda: state.metrics.in_flight.set(state.in_flight()),
        )
        await self._start()

    async def _start(self) -> None:
        s = self.server
        sys.setswitchinterval(s.options.switch_interval_s)
        for p in s.state.pipelines():
            await asyncio.to_thread(p.start)
        for part in self.parts:
            await part.start()
        if self.cluster is not None:
            await self.cluster.start()  # replays the admin calls made before this replica started
            s.state.control = self.cluster.as_control()
        if s.tracer is not None:
            s.tracer.start()
        await self.bridge.start()
        heap.settle()
        s.state.ready = True
        log.info("replica %s serving", self.replica)

    def __serve_build_asgi_app__(self) -> Any:
        return answered_by(self.server.app, f"{self.replica}@{ray.get_runtime_context().get_node_id()}")

    async def __del__(self) -> None:
        s = self.server
        s.state.ready = False
        await self.bridge.stop()
        if self.cluster is not None:
            await self.cluster.stop()
        for part in self.parts:
            await part.stop(s.options.grace_s)
        for p in s.state.pipelines():
            await asyncio.to_thread(p.stop)
        if s.tracer is not None:
            s.tracer.stop()


for _name in RPC_NAMES:
    setattr(FacepipeReplica, _name, _rpc(_name))
Replica = serve.ingress()(FacepipeReplica)


def deployment_options(config: Config) -> dict[str, Any]:
    """Ray Serve's deployment options from the config's ``ray:`` keys."""
    r = config.ray
    options: dict[str, Any] = {
        "name": "facepipe",
        "ray_actor_options": {"num_cpus": r.num_cpus, "num_gpus": r.num_gpus},
        "max_ongoing_requests": r.max_ongoing_requests,
        "max_queued_requests": r.max_queued_requests,
        "backpressure_config": {"status_code": 503, "retry_after_s": r.retry_after_s},
        "graceful_shutdown_timeout_s": config.model_control.drain_timeout_s,
        "logging_config": {"enable_access_log": r.access_log},
    }
    if r.autoscaling is not None:
        a = r.autoscaling
        options["autoscaling_config"] = a.model_dump()
    else:
        options["num_replicas"] = r.replicas
    return options


def deployment(spec: ReplicaSpec) -> Any:
    """The Ray Serve application of ``spec``'s config, not yet running."""
    made: Any = serve.deployment(Replica)
    return made.options(**deployment_options(spec.config)).bind(spec)


def deploy(spec: ReplicaSpec, address: str, blocking: bool = False) -> None:
    """Connect to the Ray cluster at ``address``, start Serve's proxies on the config's HTTP and gRPC
    ports (every node that runs a replica gets one), and run the application; returns once every
    replica serves (``blocking``: then waits until interrupted)."""
    c = spec.config
    if not ray.is_initialized():
        ray.init(address=address, logging_level=logging.WARNING)
    http = {"host": c.host, "port": c.http_port}
    grpc = {"port": c.rpc_port, "grpc_servicer_functions": SERVICERS}
    serve.start(proxy_location=c.ray.proxy_location, http_options=http, grpc_options=grpc)
    create_log(c.ray.app_name)
    serve.run(deployment(spec), name=c.ray.app_name, route_prefix="/", blocking=blocking)
