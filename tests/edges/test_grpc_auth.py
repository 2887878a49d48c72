"""``auth.protect_inference`` on gRPC: seed inference and KServe ModelInfer need a read or admin key in
the ``x-api-key`` metadata, through the same one wrapper (a minimal servicer context records the
status the wrapper answers)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from facepipe.api.auth import ApiKeys
from facepipe.edges.grpc import InferenceServicer, SeedServicer
from facepipe.edges.observe import Edge
from facepipe.edges.state import ServerState
from facepipe.protos import grpc_predict_v2_pb2 as pb
from facepipe.protos import pipeline_service_pb2 as seed_pb

READ = "read-key-0123456789ab"


class Context:
    """What the wrapper needs of a grpc.aio servicer context: metadata in, a status out."""

    def __init__(self, key: str | None) -> None:
        self.metadata = [("x-api-key", key)] if key else []
        self.status: grpc.StatusCode | None = None

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return self.metadata

    async def abort(self, code: grpc.StatusCode, message: str) -> None:
        self.status = code

    def code(self) -> Any:
        return self.status


def servicers() -> tuple[SeedServicer, InferenceServicer]:
    state = ServerState({}, {})
    state.authorize_inference = ApiKeys([], [READ.encode()], protect_inference=True).check_inference
    edge = Edge(state.metrics)
    return SeedServicer(state, edge), InferenceServicer(state, edge, "test")


def test_model_infer_needs_a_key() -> None:
    _, kserve = servicers()
    ctx = Context(None)
    asyncio.run(kserve.ModelInfer(pb.ModelInferRequest(model_name="ArcFace"), ctx))
    assert ctx.status == grpc.StatusCode.UNAUTHENTICATED
    ctx = Context(READ)  # with a key: past auth, to the unknown model
    asyncio.run(kserve.ModelInfer(pb.ModelInferRequest(model_name="ArcFace"), ctx))
    assert ctx.status == grpc.StatusCode.NOT_FOUND


def test_seed_inference_needs_a_key() -> None:
    seed, _ = servicers()
    reply = asyncio.run(seed.inference(seed_pb.Request(name="ArcFace"), Context(None)))
    assert reply.err_no == 5000 and "missing API key" in reply.err_msg
    reply = asyncio.run(seed.inference(seed_pb.Request(name="ArcFace"), Context(READ)))
    assert reply.err_no == 3002  # past auth: no such service here
