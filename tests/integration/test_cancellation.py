"""Abandoned work stops (issue 22 item 5): gRPC calls the client gives up on, and HTTP requests whose
client disconnects, are counted ``cancelled`` (never ``ok``), their queued images are skipped, and the
server is idle again at once instead of running them on."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import grpc
import httpx
from prometheus_client.parser import text_string_to_metric_families

from facepipe.protos import face_service_pb2 as pb
from facepipe.protos import face_service_pb2_grpc as pb_grpc
from tests.integration.conftest import Running


def sample(url: str, name: str, **labels: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def idle_within(url: str, seconds: float) -> float:
    """Seconds until /readyz reports nothing in flight and every stage queue is empty."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        ready = httpx.get(url + "/readyz", timeout=10).json()
        if ready["in_flight"] == 0 and sample(url, "facepipe_stage_queue_depth") == 0:
            return time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError(f"still busy after {seconds} s")


def test_grpc_calls_given_up_are_cancelled_and_their_queued_work_skipped(
    server: Running, photos_dir: Path
) -> None:
    image = (photos_dir / "img20.jpg").read_bytes()
    skipped_before = sample(server.url, "facepipe_stage_cancelled_items_total")

    async def abandon() -> None:
        async with grpc.aio.insecure_channel(server.grpc) as channel:
            stub = pb_grpc.FaceStub(channel)
            calls = [stub.Detect(pb.FaceRequest(images=[image] * 4)) for _ in range(12)]  # 48 images
            await asyncio.sleep(0.3)
            for call in calls:
                call.cancel()
            await asyncio.gather(*calls, return_exceptions=True)

    asyncio.run(abandon())
    assert idle_within(server.url, 3.0) < 3.0
    assert sample(server.url, "facepipe_requests_total", endpoint="grpc-v1:detect", status="cancelled") >= 10
    assert sample(server.url, "facepipe_stage_cancelled_items_total") - skipped_before >= 20


def test_http_clients_that_disconnect_cancel_their_work(server: Running, photos_dir: Path) -> None:
    image = (photos_dir / "img20.jpg").read_bytes()
    boundary = b"cancel-boundary"
    parts = b"".join(
        b"--"
        + boundary
        + b'\r\nContent-Disposition: form-data; name="f%d"; filename="a.jpg"\r\n\r\n' % i
        + image
        + b"\r\n"
        for i in range(6)
    )
    body = parts + b"--" + boundary + b"--\r\n"
    head = (
        "POST /v1/detect HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary.decode()}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    skipped_before = sample(server.url, "facepipe_stage_cancelled_items_total")
    socks = []
    for _ in range(8):  # 48 images
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(head + body)
        socks.append(s)
    time.sleep(0.3)
    for s in socks:
        s.close()
    assert idle_within(server.url, 3.0) < 3.0
    assert sample(server.url, "facepipe_requests_total", endpoint="v1:detect", status="cancelled") >= 6
    assert sample(server.url, "facepipe_stage_cancelled_items_total") - skipped_before >= 20
