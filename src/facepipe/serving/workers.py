"""Several server processes on one port (the seed's ``worker_num``): the parent binds the HTTP socket
and forks the workers, each a whole server (pipelines, models, edges) accepting on the shared socket;
the gRPC port is shared with SO_REUSEPORT. SIGTERM/SIGINT are passed on to every worker, which drains
as a single server does; if a worker dies on its own, the others are stopped and its exit code
returned, so that a supervisor restarts the whole set."""

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
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit it: without it a small answer waits for the client's delayed ACK
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve_workers(n: int, host: str, port: int, child: Callable[[socket.socket, int], None]) -> int:
    """Run ``child(sock, index)`` in ``n`` forked processes; returns the exit code for the parent."""
    sock = bind(host, port)
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=child, args=(sock, i), name=f"facepipe-worker-{i}") for i in range(n)]
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
        sock.close()
    return max((abs(p.exitcode or 0) for p in procs), default=0)
