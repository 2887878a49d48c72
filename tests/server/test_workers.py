"""worker_num's supervisor: workers share one port, each with its own socket, and the kernel spreads
connections over them; a worker that dies on its own is started again, one that keeps dying stops the set."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

from facepipe.server.workers import bind, serve_workers
from tests.integration.conftest import free_port


def _child(sock: socket.socket, index: int) -> None:
    if index == 1:
        os._exit(3)  # a worker that dies every time it starts
    signal.pause()  # the others wait to be stopped


def test_a_worker_that_keeps_dying_stops_the_others() -> None:
    t0 = time.monotonic()
    code = serve_workers(3, "127.0.0.1", 0, _child)
    assert code != 0 and time.monotonic() - t0 < 10


def _dies_once(marks: str) -> Callable[[socket.socket, int], None]:
    def child(sock: socket.socket, index: int) -> None:
        starts = Path(marks) / f"{index}"
        n = len(starts.read_text()) if starts.exists() else 0
        starts.write_text("x" * (n + 1))
        if index == 1 and n == 0:
            os.kill(os.getpid(), signal.SIGKILL)  # killed once, as by the OOM killer or kill -9
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # drains and stops, as a server does
        signal.pause()

    return child


def _starts(marks: Path) -> int:
    return len(marks.read_text()) if marks.exists() else 0


def _supervise_dies_once(marks: str) -> None:
    os._exit(serve_workers(2, "127.0.0.1", 0, _dies_once(marks)))


def test_a_killed_worker_is_started_again_while_the_others_serve(tmp_path: Path) -> None:
    parent = mp.get_context("fork").Process(target=_supervise_dies_once, args=(str(tmp_path),))
    parent.start()
    deadline = time.monotonic() + 10
    while (
        time.monotonic() < deadline and (tmp_path / "1").read_text() != "xx"
        if (tmp_path / "1").exists()
        else True
    ):
        time.sleep(0.1)
    assert (tmp_path / "1").read_text() == "xx"  # forked again after its death
    assert (tmp_path / "0").read_text() == "x"  # the other was never disturbed
    assert parent.is_alive()
    os.kill(parent.pid, signal.SIGTERM)  # type: ignore[arg-type]
    parent.join(10)
    assert parent.exitcode == 0


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
