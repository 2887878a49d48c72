"""Slow clients (issue 22): idle connections that never send a request, and connections that trickle
their request a byte at a time, bounded in number, do not starve the others: plain requests made
meanwhile are all answered, promptly."""

from __future__ import annotations

import base64
import socket
import threading
import time
from pathlib import Path

import httpx

from tests.integration.conftest import Running

IDLE, TRICKLING, SECONDS = 100, 20, 6.0


def _trickle(port: int, stop: threading.Event) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        request = b"POST /ArcFace/prediction HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
        for byte in request + b"{" * 1000:
            if stop.is_set():
                return
            try:
                s.sendall(bytes([byte]))
            except OSError:
                return  # the server closed it: fine too
            time.sleep(0.2)


def test_idle_and_trickling_connections_do_not_starve_others(server: Running, lfw_dir: Path) -> None:
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(IDLE)]
    stop = threading.Event()
    trickling = [threading.Thread(target=_trickle, args=(server.port, stop)) for _ in range(TRICKLING)]
    for t in trickling:
        t.start()
    img = base64.b64encode(sorted((lfw_dir / "images").glob("*/*.jpg"))[0].read_bytes()).decode()
    body = {"key": ["image"], "value": [img]}
    took = []
    try:
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            r = httpx.post(server.url + "/ArcFace/prediction", json=body, timeout=10)
            took.append(time.monotonic() - t0)
            assert r.status_code == 200 and r.json()["err_no"] == 0, r.text
            time.sleep(0.1)
    finally:
        stop.set()
        for t in trickling:
            t.join()
        for s in idle:
            s.close()
    assert len(took) >= 10 and max(took) < 2.0, took
    assert httpx.get(server.url + "/readyz", timeout=10).status_code == 200
