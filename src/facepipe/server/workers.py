"""Several server processes on one port (the seed's ``worker_num``): the parent reserves the HTTP port
and forks the workers, each a whole server (pipelines, models, edges) with a listening socket of its
own on that port (SO_REUSEPORT, as the gRPC port): the kernel spreads new connections over the
workers. (One shared listening socket did not: the worker whose event loop woke first accepted a
whole burst of keep-alive connections, e.g. all 8 clients of a benchmark level.) A worker's socket
listens only once it serves, so no connection waits on a worker still loading its models.
SIGTERM/SIGINT are passed on to every worker, which drains as a single server does. A worker that dies
on its own (kill -9, out of memory) is forked again while the others go on serving; only a worker that
keeps dying (``MAX_RESTARTS`` within ``RESTART_WINDOW_S``) stops the set, whose exit code then tells a
supervisor that something is wrong beyond one process."""

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
MAX_RESTARTS = 5  # of one worker within the window: beyond it, a crash loop, not an accident
RESTART_WINDOW_S = 60.0


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
    for s in (signal.SIGTERM, signal.SIGINT):  # a worker forked again must not inherit the supervisor's
        signal.signal(s, signal.SIG_DFL)
    child(bind(host, port), index)


def serve_workers(n: int, host: str, port: int, child: Callable[[socket.socket, int], None]) -> int:
    """Run ``child(sock, index)`` in ``n`` forked processes, each with its own socket on the port;
    returns the exit code for the parent."""
    reserved = bind(host, port)  # fails at once if the port is taken; never listens
    port = reserved.getsockname()[1]
    ctx = mp.get_context("fork")

    def fork(i: int) -> mp.process.BaseProcess:
        p = ctx.Process(target=_worker, args=(child, host, port, i), name=f"facepipe-worker-{i}")
        p.start()
        return p

    procs = [fork(i) for i in range(n)]
    restarts: list[list[float]] = [[] for _ in range(n)]
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
            for i, p in enumerate(procs):
                if stopping or p.is_alive() or p.exitcode == 0:
                    continue
                now = time.monotonic()
                restarts[i] = [t for t in restarts[i] if now - t < RESTART_WINDOW_S] + [now]
                if len(restarts[i]) > MAX_RESTARTS:
                    log.error("worker %s keeps dying (exit %s): stopping the others", p.name, p.exitcode)
                    stop(signal.SIGTERM, None)
                    break
                log.warning("worker %s exited with %s: starting it again", p.name, p.exitcode)
                procs[i] = fork(i)
            time.sleep(0.2)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        reserved.close()
    return max((abs(p.exitcode or 0) for p in procs), default=0)
