"""Several server processes on one port (the seed's ``worker_num``): the parent reserves the HTTP port
and forks the workers, each a whole server (pipelines, models, edges) with a listening socket of its
own on that port (SO_REUSEPORT, as the gRPC port): the kernel spreads new connections over the
workers. (One shared listening socket did not: the worker whose event loop woke first accepted a
whole burst of keep-alive connections, e.g. all 8 clients of a benchmark level.) A worker's socket
listens only once it serves, so no connection waits on a worker still loading its models.
SIGTERM/SIGINT are passed on to every worker, which drains as a single server does; if a worker dies
on its own, the others are stopped and its exit code returned, so that a supervisor restarts the
whole set."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with SO_REUSEPORT, not yet listening (the server listens
    when it starts serving)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    # accepted connections inherit it: without it a small answer waits for the client's delayed ACK
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    return sock


def _worker(child: Callable[[socket.socket, int], None], host: str, port: int, index: int) -> None:
    child(bind(host, port), index)


def serve_workers(n: int, host: str, port: int, child: Callable[[socket.socket, int], None]) -> int:
    """Run ``child(sock, index)`` in ``n`` forked processes, each with its own socket on the port;
    returns the exit code for the parent."""
    reserved = bind(host, port)  # fails at once if the port is taken; never listens
    port = reserved.getsockname()[1]
    ctx = mp.get_context("fork")
    procs = [
        ctx.Process(target=_worker, args=(child, host, port, i), name=f"facepipe-worker-{i}")
        for i in range(n)
    ]
    for p in procs:
        p.start()
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.is_alive() and p.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    log.info("%d workers serving on %s:%d", n, host, port)
    try:
        while any(p.is_alive() for p in procs):
            died = [p for p in procs if not p.is_alive() and p.exitcode not in (0, None)]
            if died and not stopping:
                log.error("worker %s exited with %s: stopping the others", died[0].name, died[0].exitcode)
                stop(signal.SIGTERM, None)
            time.sleep(0.2)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        reserved.close()
    return max((abs(p.exitcode or 0) for p in procs), default=0)
