"""Tracing against a real server: started with ``tracing.enabled``, it exports its spans over OTLP/gRPC
to a real OTLP receiver run by the test on 127.0.0.1 (the collector's TraceService from
opentelemetry-proto), which reads them back: an enrolment's trace continues the caller's traceparent
through the photo DAG's ops into the gallery; a seed gRPC call's through the process op ArcFace."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as otlp
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as otlp_grpc

from facepipe.protos import pipeline_service_pb2 as seed_pb
from facepipe.protos import pipeline_service_pb2_grpc as seed_grpc
from tests.integration.conftest import Running, start_server, stop_server

ADMIN = "admin-key-0123456789"
FACE = "Aaron_Sorkin/Aaron_Sorkin_0001.jpg"


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    service: str


class Receiver(otlp_grpc.TraceServiceServicer):
    """An OTLP trace receiver keeping every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.lock = threading.Lock()

    def Export(
        self, request: otlp.ExportTraceServiceRequest, context: Any
    ) -> otlp.ExportTraceServiceResponse:
        for rs in request.resource_spans:
            service = next(
                (a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), ""
            )
            for scope in rs.scope_spans:
                with self.lock:
                    self.spans += [self._span(s, service) for s in scope.spans]
        return otlp.ExportTraceServiceResponse()

    @staticmethod
    def _span(s: Any, service: str) -> Span:
        attrs = {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in s.attributes}
        return Span(s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), attrs, service)

    def trace(self, trace_id: str, names: set[str], wait_s: float = 20) -> dict[str, Span]:
        """The spans of ``trace_id`` by name, once every one of ``names`` has arrived."""
        deadline = time.monotonic() + wait_s
        while True:
            with self.lock:
                found = {s.name: s for s in self.spans if s.trace_id == trace_id}
            if names <= set(found) or time.monotonic() > deadline:
                return found
            time.sleep(0.1)


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, int]]:
    server = grpc.server(ThreadPoolExecutor(2))
    rec = Receiver()
    otlp_grpc.add_TraceServiceServicer_to_server(rec, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield rec, port
    server.stop(None)


@pytest.fixture(scope="module")
def traced(
    models_dir: Path, tmp_path_factory: pytest.TempPathFactory, receiver: tuple[Receiver, int]
) -> Iterator[Running]:
    tracing = {"enabled": True, "endpoint": f"http://127.0.0.1:{receiver[1]}", "service_name": "faces-test"}
    config = {
        "tracing": tracing,
        "auth": {"api_keys": [ADMIN]},
        "op": {"ArcFace": {"concurrency": 1, "batch_size": 4, "is_thread_op": False}},  # a process op
    }
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # the SDK's own variable: export every 100 ms
        running = start_server(models_dir, tmp_path_factory.mktemp("traced"), config)
    yield running
    stop_server(running)


def traceparent(n: int) -> tuple[str, str, str]:
    trace_id, parent = f"{n:032x}", f"{n + 1:016x}"
    return trace_id, parent, f"00-{trace_id}-{parent}-01"


def test_an_enrolment_is_one_trace_from_the_edge_through_the_ops_to_the_gallery(
    traced: Running, receiver: tuple[Receiver, int], lfw_dir: Path
) -> None:
    rec = receiver[0]
    c = httpx.Client(base_url=traced.url, timeout=60, headers={"x-api-key": ADMIN})
    assert c.post("/v1/subjects", json={"id": "aaron", "name": "Aaron"}).status_code == 201
    trace_id, parent, header = traceparent(0xA11CE)
    image = ("image", ("a.jpg", (lfw_dir / "images" / FACE).read_bytes(), "image/jpeg"))
    r = c.post("/v1/subjects/aaron/faces", files=[image], headers={"traceparent": header})
    assert r.status_code == 201, r.text
    ops = {"op decode", "op detect", "op align", "op embed", "op join"}
    spans = rec.trace(trace_id, {"v1:faces_enrol", "gallery enrol", *ops})
    root = spans["v1:faces_enrol"]
    assert root.parent_id == parent and root.service == "faces-test"
    assert root.attributes["facepipe.status"] == "ok" and root.attributes["http.response.status_code"] == 201
    for name in [*ops, "gallery enrol"]:
        assert spans[name].parent_id == root.span_id, name
    assert spans["op embed"].attributes["facepipe.batch.size"] >= 1

    trace_id, _, header = traceparent(0xB0B)
    r = c.post("/v1/identify", files=[image], headers={"traceparent": header})
    assert r.status_code == 200 and r.json()["results"][0]["faces"][0]["matches"][0]["subject"] == "aaron", (
        r.text
    )
    spans = rec.trace(trace_id, {"v1:identify", "gallery identify", "op embed"})
    assert spans["gallery identify"].parent_id == spans["v1:identify"].span_id


def test_a_seed_grpc_call_continues_the_trace_through_the_process_op(
    traced: Running, receiver: tuple[Receiver, int], lfw_dir: Path
) -> None:
    stub = seed_grpc.PipelineServiceStub(grpc.insecure_channel(traced.grpc))
    face = base64.b64encode((lfw_dir / "images" / FACE).read_bytes()).decode()
    trace_id, parent, header = traceparent(0xC0FFEE)
    request = seed_pb.Request(key=["image"], value=[face], name="ArcFace")
    reply = stub.inference(request, metadata=[("traceparent", header)], timeout=60)
    assert reply.err_no == 0, reply.err_msg
    spans = receiver[0].trace(trace_id, {"grpc-seed:ArcFace", "op ArcFace"})
    root, step = spans["grpc-seed:ArcFace"], spans["op ArcFace"]
    assert root.parent_id == parent and root.attributes["facepipe.protocol"] == "grpc"
    assert step.parent_id == root.span_id and step.attributes["facepipe.op.process"] is True
