"""worker_num's supervisor: workers share one socket; one dying on its own stops the others."""

from __future__ import annotations

import os
import signal
import socket
import time

from facepipe.serving.workers import bind, serve_workers


def _child(sock: socket.socket, index: int) -> None:
    if index == 1:
        os._exit(3)  # a worker that dies on its own
    signal.pause()  # the others wait to be stopped


def test_a_dying_worker_stops_the_others() -> None:
    t0 = time.monotonic()
    code = serve_workers(3, "127.0.0.1", 0, _child)
    assert code != 0 and time.monotonic() - t0 < 10


def test_the_shared_socket_listens_without_delayed_acks() -> None:
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert sock.get_inheritable()
    finally:
        sock.close()
