"""A lean HTTP/1.1 load generator: pre-encoded requests over keep-alive sockets, several processes.

The client must not be the bottleneck when it shares cores with the server, so requests are built once
as bytes and responses are read by ``Content-Length`` without parsing JSON. ``ok`` decides success from
the status and the raw body (the seed protocol answers HTTP 200 with ``err_no`` in the body).
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np


@dataclass(slots=True)
class Level:
    """One closed-loop run at a fixed concurrency."""

    concurrency: int
    requests: int
    seconds: float
    qps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int] = field(default_factory=dict)


def seed_ok(status: int, body: bytes) -> bool:
    return status == 200 and b'"err_no":0' in body[:64]


def http_ok(status: int, body: bytes) -> bool:
    return status == 200


def encode_post(url: str, body: bytes, content_type: str = "application/json") -> bytes:
    u = urlsplit(url)
    path = u.path + (f"?{u.query}" if u.query else "")
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, await reader.readexactly(length)


async def _connection(
    host: str, port: int, requests: list[bytes], start: int, step: int, stop: float, ok: Callable[..., bool]
) -> tuple[list[float], Counter[str]]:
    lat: list[float] = []
    errors: Counter[str] = Counter()
    reader, writer = await asyncio.open_connection(host, port)
    i = start
    try:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            writer.write(requests[i % len(requests)])
            status, body = await _read_response(reader)
            lat.append(time.perf_counter() - t0)
            if not ok(status, body):
                errors[f"http {status}" if status != 200 else "application error"] += 1
            i += step
    except (OSError, asyncio.IncompleteReadError) as exc:
        errors[type(exc).__name__] += 1
    finally:
        writer.close()
    return lat, errors


def _process(
    args: tuple[str, list[bytes], list[int], int, float, Callable[..., bool]],
) -> tuple[list[float], dict[str, int]]:
    url, requests, offsets, step, stop, ok = args
    u = urlsplit(url)

    async def run() -> tuple[list[float], dict[str, int]]:
        host, port = u.hostname or "127.0.0.1", u.port or 80
        parts = await asyncio.gather(*(_connection(host, port, requests, k, step, stop, ok) for k in offsets))
        errors: Counter[str] = Counter()
        for _, e in parts:
            errors.update(e)
        return [x for lat, _ in parts for x in lat], dict(errors)

    return asyncio.run(run())


def closed_loop(
    url: str,
    requests: list[bytes],
    concurrency: int,
    seconds: float,
    processes: int = 1,
    ok: Callable[[int, bytes], bool] = http_ok,
) -> Level:
    """``concurrency`` connections, each sending its next request as soon as the last one answered."""
    processes = max(1, min(processes, concurrency))
    stop = time.perf_counter() + seconds
    shards = [list(range(p, concurrency, processes)) for p in range(processes)]
    jobs = [(url, requests, s, concurrency, stop, ok) for s in shards]
    t0 = time.perf_counter()
    if processes == 1:
        results = [_process(jobs[0])]
    else:
        with mp.get_context("fork").Pool(processes) as pool:
            results = pool.map(_process, jobs)
    wall = time.perf_counter() - t0
    lat = np.array([x for r in results for x in r[0]]) * 1e3
    errors: Counter[str] = Counter()
    for _, e in results:
        errors.update(e)
    pct = np.percentile(lat, [50, 90, 99]) if len(lat) else np.zeros(3)
    return Level(
        concurrency,
        len(lat),
        wall,
        len(lat) / wall,
        float(pct[0]),
        float(pct[1]),
        float(pct[2]),
        float(lat.max()) if len(lat) else 0.0,
        dict(errors),
    )
