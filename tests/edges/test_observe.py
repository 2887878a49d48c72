"""The one wrapper: an HTTP client that disconnects cancels its handler and the pipeline items it
queued, counted as ``cancelled`` (issue 22 item 5); answered requests are unaffected."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from facepipe.edges.http import read_body
from facepipe.edges.observe import Edge
from facepipe.engine.metrics import Metrics
from facepipe.engine.op import FunctionOp
from facepipe.engine.pipeline import Pipeline
from facepipe.engine.stage import StageConfig


class Slow:
    def __init__(self) -> None:
        self.ran = 0
        self.lock = threading.Lock()

    def factory(self) -> FunctionOp:
        return FunctionOp(self)

    def __call__(self, batch: list[Any]) -> list[Any]:
        time.sleep(0.05)
        with self.lock:
            self.ran += len(batch)
        return batch


def app_over(pipeline: Pipeline, edge: Edge) -> Starlette:
    async def work(request: Request) -> Response:
        await read_body(request, 1024)
        await asyncio.gather(*(pipeline.submit(i) for i in range(20)))  # 20 x 50 ms, one worker
        return Response(b"done")

    return Starlette(
        routes=[edge.route("/work", work, "work", lambda e, r: Response(status_code=500), ["POST"])]
    )


async def call(app: Starlette, leave_after_s: float | None) -> list[dict[str, Any]]:
    """One POST through the ASGI app; the client disconnects after ``leave_after_s`` (None: it waits)."""
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": b"x", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        if leave_after_s is None:
            await asyncio.sleep(3600)
        await asyncio.sleep(leave_after_s or 0)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/work", "headers": [], "query_string": b""}
    await asyncio.wait_for(app(scope, receive, send), timeout=10)
    return sent


def test_a_client_that_leaves_cancels_its_queued_work() -> None:
    op = Slow()
    pipeline = Pipeline("p", [(StageConfig("slow", queue_size=64), op.factory)])
    edge = Edge(Metrics(lambda: [pipeline]))
    app = app_over(pipeline, edge)
    pipeline.start()
    try:

        async def leave() -> tuple[list[dict[str, Any]], float]:
            t0 = time.monotonic()
            sent = await call(app, leave_after_s=0.12)
            elapsed = time.monotonic() - t0
            await asyncio.sleep(0.3)  # what was queued would run now, were it not skipped
            return sent, elapsed

        sent, elapsed = asyncio.run(leave())
    finally:
        pipeline.stop()
    assert elapsed < 0.5 and sent[0]["status"] == 499
    assert op.ran <= 5 and pipeline.stages[0].stats.cancelled >= 15, (
        op.ran,
        pipeline.stages[0].stats.cancelled,
    )
    assert 'endpoint="work",status="cancelled"' in edge.metrics.render().decode()


def test_a_client_that_waits_gets_its_answer() -> None:
    op = Slow()
    pipeline = Pipeline("p", [(StageConfig("slow", batch_size=20), op.factory)])
    edge = Edge(Metrics(lambda: [pipeline]))
    pipeline.start()
    try:
        sent = asyncio.run(call(app_over(pipeline, edge), leave_after_s=None))
    finally:
        pipeline.stop()
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"done" and op.ran == 20
    assert 'endpoint="work",status="ok"' in edge.metrics.render().decode()
