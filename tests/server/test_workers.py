"""worker_num's supervisor: workers share one port, each with its own socket, and the kernel spreads
connections over them; one worker dying on its own stops the others."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import socket
import time

from facepipe.server.workers import bind, serve_workers
from tests.integration.conftest import free_port


def _child(sock: socket.socket, index: int) -> None:
    if index == 1:
        os._exit(3)  # a worker that dies on its own
    signal.pause()  # the others wait to be stopped


def test_a_dying_worker_stops_the_others() -> None:
    t0 = time.monotonic()
    code = serve_workers(3, "127.0.0.1", 0, _child)
    assert code != 0 and time.monotonic() - t0 < 10


def test_a_worker_socket_shares_its_port_without_delayed_acks() -> None:
    first = bind("127.0.0.1", 0)
    second = bind("127.0.0.1", first.getsockname()[1])  # a second worker on the same port
    try:
        for sock in (first, second):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        first.close()
        second.close()


def _burst_child(sock: socket.socket, index: int) -> None:
    """Like an event loop that wakes late: accept every pending connection at once, answer its index."""
    sock.listen(64)
    time.sleep(1.0)  # the test's connections all arrive meanwhile
    sock.setblocking(False)
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            time.sleep(0.01)
            continue
        conn.setblocking(True)
        conn.sendall(bytes([index]))
        conn.close()


def _supervise(port: int) -> None:
    serve_workers(2, "127.0.0.1", port, _burst_child)


def test_a_burst_of_connections_is_spread_over_the_workers() -> None:
    port = free_port()
    supervisor = mp.get_context("fork").Process(target=_supervise, args=(port,))
    supervisor.start()
    try:
        time.sleep(0.5)  # both workers listening, neither accepting yet
        conns = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(16)]
        answers = {c.recv(1)[0] for c in conns}
        for c in conns:
            c.close()
        assert answers == {0, 1}  # one shared socket: the first worker to wake took all 16
    finally:
        if supervisor.pid is not None:
            os.kill(supervisor.pid, signal.SIGTERM)
        supervisor.join(10)
