"""What tracing costs a request, in process: requests through the one edge wrapper (edges/observe.py)
into a line of three trivial ops (decode -> embed -> join, each its own stage and worker thread), so
that the time measured is the serving path itself, where tracing's cost shows most.

Modes, interleaved round by round (the median of the rounds is reported):
  off        no binding installed (tracing.enabled: false): the seams' None checks only
  unsampled  OpenTelemetry on, sample ratio 0: a non-recording root span per request, nothing below
  on         OpenTelemetry on, every request sampled: root + 3 op spans, through the SDK's
             BatchSpanProcessor to an exporter that drops them (encoding and sending are the batch
             processor's thread's work, not the request's)

    nice -n 10 python -m bench.tracing_overhead --out bench/results/tracing.json

``--modes off`` with PYTHONPATH pointing at an older checkout measures the code before the seams.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from facepipe.edges.observe import Edge
from facepipe.engine.metrics import Metrics
from facepipe.engine.op import FunctionOp
from facepipe.engine.pipeline import Pipeline
from facepipe.engine.stage import StageConfig

MODES = ("off", "unsampled", "on")


def pipeline(batch_size: int) -> Pipeline:
    same = lambda: FunctionOp(lambda batch: batch)  # noqa: E731
    return Pipeline("p", [(StageConfig(n, batch_size=batch_size), same) for n in ("decode", "embed", "join")])


def app_over(p: Pipeline) -> Starlette:
    async def work(request: Request) -> Response:
        return Response(str((await p.submit(1)).value))

    edge = Edge(Metrics(lambda: [p]))
    error = lambda e, r: Response(status_code=500)  # noqa: E731
    return Starlette(routes=[edge.route("/work", work, "work", error, ["POST"])])


async def one(app: Starlette) -> None:
    """One POST through the ASGI app (no socket), headers like a traced caller's."""
    messages = [{"type": "http.request", "body": b"x", "more_body": False}]
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await never.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"status {message['status']}")

    headers = [(b"content-length", b"1"), (b"user-agent", b"bench")]
    scope = {"type": "http", "method": "POST", "path": "/work", "headers": headers, "query_string": b""}
    await app(scope, receive, send)


async def drive(app: Starlette, requests: int, concurrency: int) -> tuple[float, float]:
    """Microseconds per request, wall and CPU (every thread of the process: the event loop, the
    stages' workers, the span processor's): ``requests`` of them, ``concurrency`` at a time."""
    per_client = requests // concurrency

    async def client() -> None:
        for _ in range(per_client):
            await one(app)

    t0, c0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    n = per_client * concurrency
    return (time.perf_counter() - t0) / n * 1e6, (time.process_time() - c0) / n * 1e6


def switch(mode: str) -> Any:
    """Install the binding of ``mode``; returns what to shut down after (None for off)."""
    if mode == "off":
        return None
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    from facepipe.server import tracing

    class Drop(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    ratio = 0.0 if mode == "unsampled" else 1.0
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
    provider.add_span_processor(BatchSpanProcessor(Drop(), max_queue_size=65536))
    tracing.install(provider)
    return provider


def unswitch(provider: Any) -> None:
    if provider is None:
        return
    from facepipe.server import tracing

    tracing.uninstall()
    provider.shutdown()


def parts(n: int) -> dict[str, dict[str, float]]:
    """CPU microseconds per seam call in a tight loop (one thread, no pipeline): what a span costs."""
    from facepipe.engine import spans
    from facepipe.gallery import spans as gallery_spans

    out: dict[str, dict[str, float]] = {}
    for mode in MODES:
        provider = switch(mode)
        binding = spans.active
        try:

            def root(binding: spans.Spans | None = binding) -> None:
                if binding is not None:
                    binding.request("http", {"user-agent": "bench"}).end("work", "ok", 200)

            def op_step(binding: spans.Spans | None = binding) -> None:
                if binding is not None:
                    span = binding.request("http", {})
                    ctx = binding.capture()
                    now = time.monotonic()
                    if ctx is not None:
                        binding.batch(spans.Batch("embed", 1, now, now, False, [spans.Step(ctx, 0.0)]))
                    span.end("work", "ok", 200)

            def gallery() -> None:
                with gallery_spans.span("gallery identify", {"facepipe.gallery.k": 1}):
                    pass

            row = {}
            for name, fn in (("root_span", root), ("root_plus_op_step", op_step), ("gallery_span", gallery)):
                t0 = time.thread_time()
                for _ in range(n):
                    fn()
                row[name] = round((time.thread_time() - t0) / n * 1e6, 2)
            out[mode] = row
        finally:
            unswitch(provider)
    return out


def measure(modes: Sequence[str], requests: int, rounds: int, concurrency: int, batch: int) -> dict[str, Any]:
    p = pipeline(batch)
    app = app_over(p)
    p.start()
    samples: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
    try:
        asyncio.run(drive(app, 200, concurrency))  # warm-up
        for _ in range(rounds):
            for mode in modes:
                provider = switch(mode)
                try:
                    samples[mode].append(asyncio.run(drive(app, requests, concurrency)))
                finally:
                    unswitch(provider)
    finally:
        p.stop()
    return {
        m: {
            "wall_us": round(statistics.median(w for w, _ in v), 1),
            "cpu_us": round(statistics.median(c for _, c in v), 1),
            "rounds_wall_cpu_us": [(round(w, 1), round(c, 1)) for w, c in v],
        }
        for m, v in samples.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--requests", type=int, default=2000, help="per mode and round")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    if any(m not in MODES for m in modes):
        raise SystemExit(f"--modes: each of {', '.join(MODES)}")
    sys.setswitchinterval(0.0005)  # as the server sets it (server/lifecycle.py)
    result: dict[str, Any] = {"requests_per_round": args.requests, "rounds": args.rounds}
    result["c1"] = measure(modes, args.requests, args.rounds, concurrency=1, batch=1)
    result["c16_batch8"] = measure(modes, args.requests, args.rounds, concurrency=16, batch=8)
    if modes == list(MODES):
        result["per_call_us"] = parts(20000)
    if modes == ["off"]:  # did anything import OpenTelemetry while tracing was off?
        result["opentelemetry_imported"] = any(m.startswith("opentelemetry") for m in sys.modules)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
