"""OpenTelemetry for the tracing seams of the engine (edges and ops: engine/spans.py) and the gallery
(gallery/spans.py): a span per request at the edge, a child span per op step of it, a child span per
gallery operation, exported over OTLP (gRPC or HTTP) by a batch processor.

Imported only when ``tracing.enabled`` is true. Each server process (``worker_num``) has its own
provider. Keys left unset in config.yml fall back to the OTEL_* environment variables, read by the SDK
itself (docs/config.md lists them).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import PROCESS_PID, SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode

from facepipe.config import TracingConfig
from facepipe.engine import spans as engine_spans
from facepipe.errors import ConfigError
from facepipe.gallery import spans as gallery_spans

log = logging.getLogger(__name__)
RECALIBRATE_S = 60.0  # how often op spans' monotonic -> wall clock offset is measured again
FLUSH_S = 5.0  # the longest a stopping server waits for its last spans to be exported
# gRPC statuses of calls a method aborted itself (no HTTP status known): the server's fault
_SERVER_FAULTS = {"internal", "unknown", "unavailable", "deadline_exceeded", "data_loss", "unimplemented"}


class OtelRequest:
    """A request's root span; its context is current (attached) until ``end``."""

    __slots__ = ("_protocol", "_span", "_token")

    def __init__(self, span: trace.Span, token: object, protocol: str) -> None:
        self._span, self._token, self._protocol = span, token, protocol

    def end(self, label: str, status: str, http_status: int | None) -> None:
        span = self._span
        span.update_name(label)
        span.set_attribute("facepipe.route", label)
        span.set_attribute("facepipe.status", status)
        if http_status is not None and self._protocol == "http":
            span.set_attribute("http.response.status_code", http_status)
        if (http_status >= 500) if http_status is not None else status in _SERVER_FAULTS:
            span.set_status(Status(StatusCode.ERROR, status))
        span.end()
        context.detach(self._token)  # type: ignore[arg-type]


class OtelSpans:
    """Both seams' binding to one OpenTelemetry tracer."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer
        self._offset_ns, self._calibrated = _wall_minus_monotonic(), time.monotonic()

    def request(self, protocol: str, carrier: Mapping[str, str]) -> OtelRequest:
        parent = propagate.extract(carrier)
        span = self.tracer.start_span(
            protocol, parent, SpanKind.SERVER, attributes={"facepipe.protocol": protocol}
        )
        return OtelRequest(span, context.attach(trace.set_span_in_context(span, parent)), protocol)

    def capture(self) -> Any:
        current = context.get_current()
        return current if trace.get_current_span(current).is_recording() else None

    def batch(self, batch: engine_spans.Batch) -> None:
        if batch.end - self._calibrated > RECALIBRATE_S:  # follow the wall clock's adjustments
            self._offset_ns, self._calibrated = _wall_minus_monotonic(), batch.end
        offset = self._offset_ns  # the stage's clock is time.monotonic(); spans take wall-clock ns
        start, end = int(batch.start * 1e9) + offset, int(batch.end * 1e9) + offset
        name = f"op {batch.op}"
        for step in batch.steps:
            attributes: dict[str, str | int | float | bool] = {
                "facepipe.op": batch.op,
                "facepipe.batch.size": batch.size,
                "facepipe.queue_ms": round(step.queued_s * 1e3, 3),
                "facepipe.op.process": batch.process,
            }
            span = self.tracer.start_span(name, step.context, attributes=attributes, start_time=start)
            if step.error is not None:
                span.set_status(Status(StatusCode.ERROR, f"{type(step.error).__name__}: {step.error}"))
            span.end(end)

    def gallery(self, name: str, attributes: Mapping[str, Any]) -> AbstractContextManager[Any]:
        return self.tracer.start_as_current_span(name, attributes=dict(attributes))


def _wall_minus_monotonic() -> int:
    """time.time_ns() - time.monotonic_ns(), from the closest of a few paired reads (a thread switched
    out between the two reads would shift every op span of the next minute)."""
    best: tuple[int, int] | None = None
    for _ in range(5):
        m0, wall, m1 = time.monotonic_ns(), time.time_ns(), time.monotonic_ns()
        if best is None or m1 - m0 < best[0]:
            best = (m1 - m0, wall - (m0 + m1) // 2)
    return best[1] if best is not None else 0


def install(provider: trace.TracerProvider, version: str = "") -> OtelSpans:
    """Send every span of this process (edges, ops, gallery) to ``provider`` from now on."""
    spans = OtelSpans(provider.get_tracer("facepipe", version))
    engine_spans.install(spans)
    gallery_spans.install(spans.gallery)
    return spans


def uninstall() -> None:
    engine_spans.install(None)
    gallery_spans.install(None)


def exporter(cfg: TracingConfig) -> SpanExporter:
    """The OTLP exporter the config (else OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL, else gRPC) names."""
    protocol = (
        cfg.protocol
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    )
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

        return Grpc(endpoint=cfg.endpoint)
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

        return Http(endpoint=_traces_url(cfg.endpoint))
    raise ConfigError(f"OTLP protocol {protocol!r} (from the environment) is not grpc or http/protobuf")


def _traces_url(endpoint: str | None) -> str | None:
    """An HTTP collector's base URL gets the traces path, as OTEL_EXPORTER_OTLP_ENDPOINT would."""
    if endpoint is None or urlsplit(endpoint).path not in ("", "/"):
        return endpoint
    return endpoint.rstrip("/") + "/v1/traces"


def resource(cfg: TracingConfig, version: str) -> Resource:
    """service.name: the config's, else OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, else facepipe;
    process.pid tells the ``worker_num`` processes apart (each builds its own, after the fork)."""
    attributes: dict[str, str | int] = {SERVICE_VERSION: version, PROCESS_PID: os.getpid()}
    if cfg.service_name:
        attributes[SERVICE_NAME] = cfg.service_name
    found = Resource.create(attributes)
    if str(found.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        found = found.merge(Resource({SERVICE_NAME: "facepipe"}))
    return found


@dataclass(slots=True)
class TracingPart:
    """Tracing as a server component: installed at start; at stop, uninstalled and the spans still
    queued are exported (the provider's shutdown flushes its batch processor)."""

    provider: TracerProvider
    version: str

    async def start(self) -> None:
        install(self.provider, self.version)

    async def stop(self, grace_s: float) -> None:
        """Flush for at most ``FLUSH_S`` (the SDK would wait 30 s for a collector that is down)."""
        uninstall()
        flush = threading.Thread(target=self.provider.shutdown, name="tracing-flush", daemon=True)
        flush.start()
        await asyncio.to_thread(flush.join, min(grace_s, FLUSH_S))
        if flush.is_alive():
            log.warning("tracing: spans not exported within %.0f s of stopping were dropped", FLUSH_S)


def tracing_part(cfg: TracingConfig, version: str, export: SpanExporter | None = None) -> TracingPart | None:
    """The server's tracing (None: off, by the config or by OTEL_SDK_DISABLED=true)."""
    if not cfg.enabled:
        return None
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        log.info("tracing: OTEL_SDK_DISABLED=true, no spans are made")
        return None
    sampler = ParentBased(TraceIdRatioBased(cfg.sample_ratio)) if cfg.sample_ratio is not None else None
    # sampler None: OTEL_TRACES_SAMPLER; shut down by TracingPart.stop, bounded, not by an atexit hook
    provider = TracerProvider(resource=resource(cfg, version), sampler=sampler, shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(export or exporter(cfg)))
    where = (
        cfg.endpoint
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "the exporter's default endpoint")
    )
    log.info("tracing: OpenTelemetry spans to %s", where)
    return TracingPart(provider, version)
