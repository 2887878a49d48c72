"""The one wrapper every handler on both transports goes through: it times the call, counts it in
``facepipe_requests`` under a label from a closed set, and turns any exception into the protocol's own
error form. Handlers raise; they never build error responses or touch metrics themselves.

HTTP handlers are wrapped by ``Edge.route``; gRPC methods by ``Edge.rpc``. While tracing is on
(engine/spans.py), each call is a root span, continuing the caller's W3C ``traceparent``. A cancelled
call (client gone, gRPC cancellation) is counted as ``cancelled``, never as ``ok``. Once an HTTP
handler has read its body (``body_read``), the connection is watched: a client that disconnects
cancels the handler, and the pipeline items it queued are skipped (engine/stage.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from facepipe.engine import spans
from facepipe.engine.metrics import Metrics
from facepipe.errors import FacepipeError, as_facepipe_error

log = logging.getLogger(__name__)

HttpHandler = Callable[[Request], Awaitable[Response]]
HttpForm = Callable[[FacepipeError, Request], Response]  # the protocol's error answer
Label = str | Callable[[Request], str]
RpcMethod = Callable[[Any, Any], Awaitable[Any]]
RpcForm = Callable[[FacepipeError, Any], Awaitable[Any]]  # answer (or abort) for the protocol
RpcLabel = str | Callable[[Any], str]


async def abort(err: FacepipeError, context: Any) -> Any:
    """The default gRPC error form: the error's status code and message."""
    await context.abort(grpc.StatusCode[err.grpc_status], err.message)


def _mapped(exc: Exception, where: str) -> FacepipeError:
    err = as_facepipe_error(exc)
    if not isinstance(exc, FacepipeError):
        log.exception("%s: unexpected error", where)
    return err


@dataclass(slots=True)
class Edge:
    """Metrics shared by every route and RPC of a server."""

    metrics: Metrics

    def wrap(self, handler: HttpHandler, label: Label, form: HttpForm) -> HttpHandler:
        async def endpoint(request: Request) -> Response:
            t0, status, answer = time.perf_counter(), "ok", None
            name = label if isinstance(label, str) else "unknown"
            span = spans.active.request("http", request.headers) if spans.active is not None else None
            request.scope[BODY_READ] = asyncio.Event()
            try:
                name = label if isinstance(label, str) else label(request)
                answer = await _unless_disconnected(handler(request), request)
                if answer is None:  # the client went away: its work was cancelled, nobody to answer
                    status = "cancelled"
                    return Response(status_code=499)
                return answer
            except asyncio.CancelledError:
                status = "cancelled"
                raise
            except Exception as exc:
                err = _mapped(exc, name)
                status = err.code
                answer = form(err, request)
                return answer
            finally:
                self.metrics.observe(name, status, time.perf_counter() - t0)
                if span is not None:
                    span.end(name, status, answer.status_code if answer is not None else None)

        return endpoint

    def route(
        self, path: str, handler: HttpHandler, label: Label, form: HttpForm, methods: Sequence[str] = ("GET",)
    ) -> Route:
        return Route(path, self.wrap(handler, label, form), methods=list(methods))

    def rpc(self, method: RpcMethod, label: RpcLabel, form: RpcForm = abort) -> RpcMethod:
        async def call(request: Any, context: Any) -> Any:
            t0, status, http_status = time.perf_counter(), "ok", None
            name = label if isinstance(label, str) else "unknown"
            span = spans.active.request("grpc", _metadata(context)) if spans.active is not None else None
            try:
                name = label if isinstance(label, str) else label(request)
                return await method(request, context)
            except asyncio.CancelledError:
                status = "cancelled"
                raise
            except Exception as exc:
                if _aborted(exc, context):  # context.abort() inside the method: already answered
                    status = str(context.code()).removeprefix("StatusCode.").lower()
                    raise
                err = _mapped(exc, name)
                status, http_status = err.code, err.http_status
                return await form(err, context)
            finally:
                self.metrics.observe(name, status, time.perf_counter() - t0)
                if span is not None:
                    span.end(name, status, http_status)

        return call


BODY_READ = "facepipe.body_read"  # scope key: an asyncio.Event set once the request body is read


def body_read(request: Request) -> None:
    """Say that the handler has read the whole body: from now on the connection is watched for the
    client going away (before, the watcher would take body chunks from the handler)."""
    event = request.scope.get(BODY_READ)
    if event is not None:
        event.set()


async def _disconnect(request: Request) -> None:
    await request.scope[BODY_READ].wait()
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_disconnected(work: Awaitable[Response], request: Request) -> Response | None:
    """``work``'s response, or None once the client disconnects (``work`` is then cancelled, and with
    it every pipeline item it queued)."""
    task, watch = asyncio.ensure_future(work), asyncio.ensure_future(_disconnect(request))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watch.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return None


def _metadata(context: Any) -> dict[str, str]:
    """A gRPC call's text metadata (``traceparent`` among it) as a carrier for the tracing seam."""
    return {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}


def _aborted(exc: Exception, context: Any) -> bool:
    code = getattr(context, "code", None)
    return type(exc).__name__ == "AbortError" and callable(code) and code() is not None
