"""The one wrapper every handler on both transports goes through: it times the call, counts it in
``facepipe_requests`` under a label from a closed set, and turns any exception into the protocol's own
error form. Handlers raise; they never build error responses or touch metrics themselves.

HTTP handlers are wrapped by ``Edge.route``; gRPC methods by ``Edge.rpc``. A cancelled call (client gone,
gRPC cancellation) is counted as ``cancelled``, never as ``ok``.
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
            t0, status = time.perf_counter(), "ok"
            name = label if isinstance(label, str) else "unknown"
            try:
                name = label if isinstance(label, str) else label(request)
                return await handler(request)
            except asyncio.CancelledError:
                status = "cancelled"
                raise
            except Exception as exc:
                err = _mapped(exc, name)
                status = err.code
                return form(err, request)
            finally:
                self.metrics.observe(name, status, time.perf_counter() - t0)

        return endpoint

    def route(
        self, path: str, handler: HttpHandler, label: Label, form: HttpForm, methods: Sequence[str] = ("GET",)
    ) -> Route:
        return Route(path, self.wrap(handler, label, form), methods=list(methods))

    def rpc(self, method: RpcMethod, label: RpcLabel, form: RpcForm = abort) -> RpcMethod:
        async def call(request: Any, context: Any) -> Any:
            t0, status = time.perf_counter(), "ok"
            name = label if isinstance(label, str) else "unknown"
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
                status = err.code
                return await form(err, context)
            finally:
                self.metrics.observe(name, status, time.perf_counter() - t0)

        return call


def _aborted(exc: Exception, context: Any) -> bool:
    code = getattr(context, "code", None)
    return type(exc).__name__ == "AbortError" and callable(code) and code() is not None
