"""Runs the HTTP (uvicorn) and gRPC edges over the pipelines it is given; drains on SIGTERM.

SIGTERM/SIGINT: readiness goes false first, new work is still accepted for ``drain_delay_s`` (so load
balancers see the change) and answered with ``Connection: close``; then the listeners close (new
connections refused), open keep-alive connections are still answered for ``linger_s``, in-flight
requests finish, pipelines stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Protocol

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facepipe.edges.state import ServerState
from facepipe.engine import heap
from facepipe.engine.tracer import Tracer

log = logging.getLogger(__name__)


class Component(Protocol):
    """A part started with the server and stopped after HTTP has drained: the gRPC edge, the
    gallery's writer."""

    async def start(self) -> None: ...

    async def stop(self, grace_s: float) -> None: ...


@dataclass(slots=True)
class ServerOptions:
    host: str = "127.0.0.1"
    http_port: int = 9998
    drain_delay_s: float = 0.5
    linger_s: float = 1.0  # after the listeners close: keep-alive connections still answered
    grace_s: float = 30.0
    # Python hands the GIL over every 5 ms by default: a worker back from inference would wait that
    # long behind a busy event loop. 0.5 ms keeps hand-offs short (measured: bench/results/cpu-arcface.md).
    switch_interval_s: float = 0.0005
    sock: socket.socket | None = None  # this worker's socket on a port several worker processes share
    urls: tuple[str, ...] = ()  # what it serves, logged once it is up


def closing_while(app: ASGIApp, draining: Callable[[], bool]) -> ASGIApp:
    """``app``, whose responses say ``Connection: close`` while the server drains: clients move to
    a new connection (refused once the listeners close) instead of reusing one about to be closed."""

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not draining():
            await app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await app(scope, receive, send_closing)

    return asgi


class Server:
    def __init__(
        self,
        state: ServerState,
        app: Starlette,
        options: ServerOptions,
        tracer: Tracer | None = None,
        components: Sequence[Component] = (),
        on_started: Callable[[], None] | None = None,
    ) -> None:
        self.state, self.options = state, options
        self.draining = False
        self.routes = app  # the application itself (its routes), under the draining wrapper
        self.app = closing_while(app, lambda: self.draining)
        self.tracer, self.components, self.on_started = tracer, components, on_started
        self._uvicorn: uvicorn.Server | None = None

    def request_stop(self) -> None:
        if not self.state.ready:
            return
        log.info("stop requested: readiness false, draining")
        self.state.ready = False
        self.draining = True
        asyncio.get_running_loop().call_later(self.options.drain_delay_s, self._stop_listening)

    def _stop_listening(self) -> None:
        """New connections are refused from now on; open keep-alive connections still get answers
        (with ``Connection: close``) for ``linger_s`` before the rest are closed."""
        for listener in self._uvicorn.servers if self._uvicorn is not None else []:
            listener.close()
        asyncio.get_running_loop().call_later(self.options.linger_s, self._close)

    def _close(self) -> None:
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True

    async def run(self) -> None:
        sys.setswitchinterval(self.options.switch_interval_s)
        for p in self.state.pipelines():
            await asyncio.to_thread(p.start)
        try:
            await self._serve()
        finally:
            self.state.ready = False
            for p in self.state.pipelines():  # also the versions loaded while serving
                await asyncio.to_thread(p.stop)
            if self.tracer is not None:
                self.tracer.stop()
            log.info("stopped")

    async def _serve(self) -> None:
        o = self.options
        config = uvicorn.Config(
            self.app,
            host=o.host,
            port=o.http_port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=int(o.grace_s),
            access_log=False,
            proxy_headers=False,
        )
        server = uvicorn.Server(config)

        @contextlib.contextmanager
        def no_signals() -> Generator[None, None, None]:
            yield

        server.capture_signals = no_signals  # type: ignore[method-assign]
        self._uvicorn = server
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        for part in self.components:
            await part.start()
        if self.tracer is not None:
            self.tracer.start()
        serving = asyncio.ensure_future(server.serve(sockets=[o.sock] if o.sock is not None else None))
        while not server.started and not serving.done():
            await asyncio.sleep(0.01)
        heap.settle()  # pipelines, models and edges are built: out of the collector's way
        self.state.ready = server.started
        if server.started:
            log.info("serving HTTP on %s:%d", o.host, o.http_port)
            for line in o.urls:
                log.info("  %s", line)
            if self.on_started is not None:
                self.on_started()
        try:
            await serving
        finally:
            for part in self.components:
                await part.stop(o.grace_s)
