"""Cheap requests cannot buy expensive work on a real server (issue 22 items 1 and 4): eight 36 Mpx
PNGs of ~0.1 MB each are refused from their headers at once, a chunked body over max_body_bytes is
refused while it streams, and the server stays ready."""

from __future__ import annotations

import time
from collections.abc import Iterator

import cv2
import httpx
import numpy as np

from tests.integration.conftest import Running
from tests.integration.test_cancellation import sample


def test_a_pixel_bomb_request_is_refused_at_once(server: Running) -> None:
    ok, png = cv2.imencode(".png", np.zeros((6000, 6000, 3), np.uint8))
    assert ok and len(png) < 200_000
    files = [(f"f{i}", (f"{i}.png", png.tobytes(), "image/png")) for i in range(8)]
    t0 = time.monotonic()
    r = httpx.post(server.url + "/v1/detect", files=files, timeout=60)
    elapsed = time.monotonic() - t0
    assert r.status_code == 413 and "per request" in r.text, r.text
    assert elapsed < 2.0, elapsed  # 29 s of CPU before the budget
    assert httpx.get(server.url + "/readyz", timeout=10).status_code == 200


def test_a_chunked_upload_over_the_limit_is_refused(server: Running) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="f"; filename="a.jpg"\r\n\r\n'
        for _ in range(100):  # 100 MB against max_body_bytes of 6 MB
            yield b"x" * 1_000_000
        yield b"\r\n--b--\r\n"

    headers = {"content-type": "multipart/form-data; boundary=b"}
    refused = {"endpoint": "v1:detect", "status": "payload_too_large"}
    before = sample(server.url, "facepipe_requests_total", **refused)
    try:
        r = httpx.post(server.url + "/v1/detect", content=chunks(), headers=headers, timeout=60)
        assert r.status_code == 413, r.text
    except httpx.HTTPError:  # the server may answer and close before the client finished sending
        pass
    assert sample(server.url, "facepipe_requests_total", **refused) == before + 1
