"""OpenTelemetry spans read back with the SDK's in-memory exporter: one trace per request, the edge's
root span over a child per op step and per gallery operation; a caller's W3C ``traceparent`` (HTTP
header or gRPC metadata) continued; batching, process ops, sampling and the config's fallbacks."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.testclient import TestClient

from facepipe.config import TracingConfig
from facepipe.edges.observe import Edge
from facepipe.engine import spans
from facepipe.engine.metrics import Metrics
from facepipe.engine.op import FunctionOp
from facepipe.engine.pipeline import REQUEST, Pipeline
from facepipe.engine.stage import StageConfig
from facepipe.errors import ConfigError, InvalidInput
from facepipe.gallery.gallery import Gallery
from facepipe.gallery.records import NewFace
from facepipe.gallery.sqlite_store import SqliteStore
from facepipe.server import tracing

TRACE_ID, PARENT_ID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


def provider_to(exporter: InMemorySpanExporter, sampler: Any = None) -> TracerProvider:
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = provider_to(exporter)
    tracing.install(provider)
    yield exporter
    tracing.uninstall()
    provider.shutdown()


def _embed(batch: list[Any]) -> list[Any]:
    return [np.full(4, 0.5, np.float32) for _ in batch]


def _tag(batch: list[Any]) -> list[Any]:
    return [len(x) for x in batch]


def _join(batch: list[Any]) -> list[Any]:
    return [vec for vec, _ in batch]


def photo_dag() -> Pipeline:
    """decode -> (embed, tag) -> join, a fake of the photo DAG's shape."""
    steps = [
        (StageConfig("decode", batch_size=4), lambda: FunctionOp(lambda b: b)),
        (StageConfig("embed", batch_size=4), lambda: FunctionOp(_embed)),
        (StageConfig("tag"), lambda: FunctionOp(_tag)),
        (StageConfig("join"), lambda: FunctionOp(_join)),
    ]
    return Pipeline("photos", steps, inputs=[[REQUEST], [0], [0], [1, 2]])


def app_over(pipeline: Pipeline, gallery: Gallery) -> Starlette:
    """One route like enrol-then-identify: the photo DAG, then two gallery operations."""

    async def enrol(request: Request) -> Response:
        vec = (await pipeline.submit(await request.body())).value
        await gallery.create_subject("ann", "Ann", {})
        await gallery.add_faces("ann", [NewFace(vec, "sha", None)])
        found = await asyncio.to_thread(gallery.identify, vec[None, :], 1)
        return JSONResponse({"subject": found[0][0].subject_id})

    edge = Edge(Metrics(lambda: [pipeline]))
    error = lambda e, r: JSONResponse({"error": e.message}, e.http_status)  # noqa: E731
    return Starlette(routes=[edge.route("/enrol", enrol, "v1:enrol", error, ["POST"])])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[TestClient]:
    pipeline = photo_dag()
    gallery = Gallery.open(SqliteStore(tmp_path / "g.db"), ("m", "1"), 4)
    pipeline.start()
    yield TestClient(app_over(pipeline, gallery))
    pipeline.stop()
    gallery.close()


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    found = exporter.get_finished_spans()
    names = [s.name for s in found]
    assert len(names) == len(set(names)), names
    return {s.name: s for s in found}


def test_a_request_is_one_trace_edge_then_ops_then_gallery(
    exported: InMemorySpanExporter, served: TestClient
) -> None:
    r = served.post("/enrol", content=b"photo")
    assert r.status_code == 200 and r.json() == {"subject": "ann"}
    got = by_name(exported)
    root = got["v1:enrol"]
    assert root.kind is SpanKind.SERVER and root.parent is None
    assert root.attributes is not None and dict(root.attributes) == {
        "facepipe.protocol": "http",
        "facepipe.route": "v1:enrol",
        "facepipe.status": "ok",
        "http.response.status_code": 200,
    }
    children = ["op decode", "op embed", "op tag", "op join", "gallery create_subject", "gallery enrol"]
    children.append("gallery identify")
    assert sorted(got) == sorted([*children, "v1:enrol"])
    for name in children:
        span = got[name]
        assert span.context is not None and root.context is not None
        assert span.context.trace_id == root.context.trace_id, name
        assert span.parent is not None and span.parent.span_id == root.context.span_id, name
        assert root.start_time is not None and root.end_time is not None
        assert span.start_time is not None and span.end_time is not None
        assert root.start_time <= span.start_time <= span.end_time <= root.end_time, name
    times = [
        (got[f"op {n}"].start_time or 0, got[f"op {n}"].end_time or 0) for n in ("decode", "embed", "join")
    ]
    assert times[0][1] <= times[1][0] and times[1][1] <= times[2][0]  # one after another
    attrs = dict(got["op embed"].attributes or {})
    assert attrs["facepipe.op"] == "embed" and attrs["facepipe.batch.size"] == 1
    assert attrs["facepipe.op.process"] is False and attrs["facepipe.queue_ms"] >= 0  # type: ignore[operator]
    identify = dict(got["gallery identify"].attributes or {})
    assert identify["facepipe.gallery.queries"] == 1 and identify["facepipe.gallery.index"] == "exact"


def test_the_callers_traceparent_is_continued(exported: InMemorySpanExporter, served: TestClient) -> None:
    served.post("/enrol", content=b"photo", headers={"traceparent": TRACEPARENT})
    spans_out = exported.get_finished_spans()
    assert len(spans_out) == 8 and {f"{s.context.trace_id:032x}" for s in spans_out if s.context} == {
        TRACE_ID
    }
    root = by_name(exported)["v1:enrol"]
    assert root.parent is not None and f"{root.parent.span_id:016x}" == PARENT_ID and root.parent.is_remote


def test_an_error_answer_marks_the_root_span(exported: InMemorySpanExporter, served: TestClient) -> None:
    served.post("/enrol", content=b"photo")  # creates ann
    r = served.post("/enrol", content=b"photo")  # ann exists: 409 from the gallery
    assert r.status_code == 409
    roots = [s for s in exported.get_finished_spans() if s.name == "v1:enrol"]
    last = roots[-1]
    assert dict(last.attributes or {})["facepipe.status"] == "conflict"
    assert dict(last.attributes or {})["http.response.status_code"] == 409
    assert last.status.status_code is StatusCode.UNSET  # the client's mistake, not the server's
    write = [s for s in exported.get_finished_spans() if s.name == "gallery create_subject"][-1]
    assert write.status.status_code is StatusCode.ERROR  # the operation itself failed


def test_requests_batched_together_each_get_the_op_step(exported: InMemorySpanExporter) -> None:
    stage = StageConfig("embed", batch_size=8, max_wait_s=0.2)
    pipeline = Pipeline("p", [(stage, lambda: FunctionOp(_embed))])
    pipeline.start()

    async def one(i: int) -> None:
        if spans.active is None:
            raise AssertionError("no binding")
        root = spans.active.request("http", {})
        await pipeline.submit(i)
        root.end(f"req{i}", "ok", 200)

    async def four() -> None:
        await asyncio.gather(*(one(i) for i in range(4)))

    try:
        asyncio.run(four())
    finally:
        pipeline.stop()
    done = exported.get_finished_spans()
    roots = {s.context.span_id: s for s in done if s.name.startswith("req") and s.context}
    steps = [s for s in done if s.name == "op embed"]
    assert len(roots) == 4 and len(steps) == 4
    assert {s.parent.span_id for s in steps if s.parent} == set(roots)  # one step in each trace
    assert {dict(s.attributes or {})["facepipe.batch.size"] for s in steps} == {4}
    assert len({(s.start_time, s.end_time) for s in steps}) == 1  # the same call


def _slow_square(batch: list[Any]) -> list[Any]:
    time.sleep(0.05)
    return [x * x for x in batch]


def slow_square() -> FunctionOp:
    return FunctionOp(_slow_square)


def test_a_process_op_is_timed_from_the_parent(exported: InMemorySpanExporter) -> None:
    pipeline = Pipeline("p", [(StageConfig("square", process=True), slow_square)])
    pipeline.start()

    async def one() -> int:
        if spans.active is None:
            raise AssertionError("no binding")
        root = spans.active.request("grpc", {"traceparent": TRACEPARENT})
        value = (await pipeline.submit(7)).value
        root.end("call", "ok", None)
        return int(value)

    try:
        assert asyncio.run(one()) == 49
    finally:
        pipeline.stop()
    step = by_name(exported)["op square"]
    assert dict(step.attributes or {})["facepipe.op.process"] is True
    assert step.context is not None and f"{step.context.trace_id:032x}" == TRACE_ID
    assert step.end_time is not None and step.start_time is not None
    assert step.end_time - step.start_time >= 50_000_000  # the child's 50 ms, seen from the parent


class Context:
    """What a gRPC method's ``context`` offers the edge: the call's metadata."""

    def __init__(self, metadata: tuple[tuple[str, str | bytes], ...]) -> None:
        self.metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self.metadata


def test_grpc_metadata_carries_the_traceparent(exported: InMemorySpanExporter) -> None:
    edge = Edge(Metrics(list))

    async def ok(request: Any, context: Any) -> str:
        return "fine"

    async def bad(request: Any, context: Any) -> str:
        raise InvalidInput("no image")

    async def broken(request: Any, context: Any) -> str:
        raise RuntimeError("bug")

    async def form(err: Any, context: Any) -> str:
        return err.code  # type: ignore[no-any-return]

    metadata = (("traceparent", TRACEPARENT), ("x-bin", b"\x00"))
    calls = [edge.rpc(m, f"grpc:{m.__name__}", form) for m in (ok, bad, broken)]

    async def all_three() -> list[str]:
        return [await call(None, Context(metadata)) for call in calls]

    assert asyncio.run(all_three()) == ["fine", "invalid_input", "internal"]
    got = by_name(exported)
    for name, status, code in [("ok", "ok", StatusCode.UNSET), ("bad", "invalid_input", StatusCode.UNSET)]:
        span = got[f"grpc:{name}"]
        attrs = dict(span.attributes or {})
        assert attrs["facepipe.protocol"] == "grpc" and attrs["facepipe.status"] == status
        assert "http.response.status_code" not in attrs and span.status.status_code is code
        assert span.parent is not None and f"{span.parent.span_id:016x}" == PARENT_ID
    assert got["grpc:broken"].status.status_code is StatusCode.ERROR


def test_unsampled_requests_make_no_spans_below_the_edge(served: TestClient) -> None:
    exporter = InMemorySpanExporter()
    provider = provider_to(exporter, ParentBased(TraceIdRatioBased(0.0)))
    tracing.install(provider)
    try:
        assert served.post("/enrol", content=b"photo").status_code == 200
        unsampled_parent = f"00-{TRACE_ID}-{PARENT_ID}-00"
        served.post("/enrol", content=b"photo", headers={"traceparent": unsampled_parent})
    finally:
        tracing.uninstall()
        provider.shutdown()
    assert exporter.get_finished_spans() == ()


def test_a_sampled_caller_is_followed_whatever_the_ratio(served: TestClient) -> None:
    exporter = InMemorySpanExporter()
    provider = provider_to(exporter, ParentBased(TraceIdRatioBased(0.0)))
    tracing.install(provider)
    try:
        served.post("/enrol", content=b"photo", headers={"traceparent": TRACEPARENT})
    finally:
        tracing.uninstall()
        provider.shutdown()
    assert len(exporter.get_finished_spans()) == 8


def test_off_by_config_or_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tracing.tracing_part(TracingConfig(), "1") is None
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert tracing.tracing_part(TracingConfig(enabled=True), "1") is None


def test_unset_keys_fall_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", raising=False)
    assert tracing.resource(TracingConfig(), "1").attributes["service.name"] == "facepipe"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "faces-eu")
    assert tracing.resource(TracingConfig(), "1").attributes["service.name"] == "faces-eu"
    assert tracing.resource(TracingConfig(service_name="mine"), "1").attributes["service.name"] == "mine"
    assert isinstance(tracing.exporter(TracingConfig()), GrpcExporter)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    assert isinstance(tracing.exporter(TracingConfig()), HttpExporter)
    assert isinstance(tracing.exporter(TracingConfig(protocol="grpc")), GrpcExporter)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(ConfigError, match="http/json"):
        tracing.exporter(TracingConfig())
    assert tracing._traces_url("http://c:4318") == "http://c:4318/v1/traces"
    assert tracing._traces_url("http://c:4318/custom/path") == "http://c:4318/custom/path"


def test_a_collector_that_is_down_never_holds_a_request_or_the_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(tracing, "FLUSH_S", 0.5)
    part = tracing.tracing_part(TracingConfig(enabled=True, endpoint=f"http://127.0.0.1:{port}"), "1")
    assert part is not None

    async def serve_then_stop() -> tuple[float, float]:
        await part.start()
        if spans.active is None:
            raise AssertionError("not installed")
        t0 = time.perf_counter()
        for _ in range(100):
            spans.active.request("http", {}).end("x", "ok", 200)
        t1 = time.perf_counter()
        await part.stop(30)
        return t1 - t0, time.perf_counter() - t1

    serving, stopping = asyncio.run(serve_then_stop())
    assert serving < 1.0 and stopping < 3.0 and spans.active is None
