"""A lean load generator: pre-encoded HTTP/1.1 requests over keep-alive sockets in several processes
(closed loop: ``closed_loop``; Poisson arrivals at a fixed rate: ``open_loop``), and a closed loop over
gRPC with pre-serialized messages (``grpc_closed_loop``).

The client must not be the bottleneck when it shares cores with the server, so requests are built once
as bytes and responses are read by ``Content-Length`` without parsing JSON. ``ok`` decides success from
the status and the raw body (the seed protocol answers HTTP 200 with ``err_no`` in the body).
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing as mp
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import grpc
import numpy as np

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Result = tuple[list[float], dict[str, int]]  # latencies (s) and errors by kind, of one client process


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


def encode_post(
    url: str, body: bytes, content_type: str = "application/json", headers: dict[str, str] | None = None
) -> bytes:
    u = urlsplit(url)
    path = u.path + (f"?{u.query}" if u.query else "")
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Type: {content_type}\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response: the body by Content-Length, or by chunks (servers that stream)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length, chunked = 0, False
    for line in lines[1:]:
        low = line.lower()
        if low.startswith(b"content-length:"):
            length = int(line[15:])
        elif low.startswith(b"transfer-encoding:") and b"chunked" in low:
            chunked = True
    if not chunked:
        return status, await reader.readexactly(length)
    body = bytearray()
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        body += await reader.readexactly(size)
        await reader.readexactly(2)
    await reader.readuntil(b"\r\n")  # the empty trailer
    return status, bytes(body)


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
    return _level(concurrency, _run_jobs(_process, jobs), time.perf_counter() - t0)


def _without_gc(fn: Callable[[Any], Result], job: Any) -> Result:
    """``fn(job)`` with the cyclic collector off: a client that pauses to walk its heap (one forked
    from a process holding PyTorch: ~70 ms) charges that pause to every request it has in flight."""
    was = gc.isenabled()
    gc.disable()
    try:
        return fn(job)
    finally:
        if was:
            gc.enable()


def _run_jobs(fn: Callable[[Any], Result], jobs: list[Any]) -> list[Result]:
    """One job in this process, several in forked client processes."""
    if len(jobs) == 1:
        return [_without_gc(fn, jobs[0])]
    with mp.get_context("fork").Pool(len(jobs)) as pool:
        return pool.starmap(_without_gc, [(fn, job) for job in jobs])


def _level(concurrency: int, results: list[tuple[list[float], dict[str, int]]], wall: float) -> Level:
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


async def _open_process(
    host: str,
    port: int,
    requests: list[bytes],
    rate: float,
    seconds: float,
    ok: Callable[..., bool],
    seed: int,
    warmup_s: float = 0.0,
) -> tuple[list[float], dict[str, int]]:
    """Poisson arrivals at ``rate``/s; latency counts from the scheduled arrival, so a slow server is
    charged for the queueing it causes (no coordinated omission). Requests due in the first
    ``warmup_s`` are sent but not counted (the keep-alive connections are opened then)."""
    rng = np.random.default_rng(seed)
    idle: list[Conn] = []
    lat: list[float] = []
    errors: Counter[str] = Counter()

    async def send(conn: Conn, request: bytes) -> tuple[int, bytes]:
        conn[1].write(request)
        return await _read_response(conn[0])

    async def one(request: bytes, due: float) -> None:
        reused = bool(idle)
        conn = idle.pop() if reused else await asyncio.open_connection(host, port)
        try:
            try:
                status, body = await send(conn, request)
            except (ConnectionError, asyncio.IncompleteReadError):
                if not reused:
                    raise
                # an idle keep-alive connection the server had closed meanwhile: what every HTTP
                # client does, send again on a fresh one (the latency still counts from ``due``)
                conn[1].close()
                conn = await asyncio.open_connection(host, port)
                status, body = await send(conn, request)
        except (OSError, asyncio.IncompleteReadError) as exc:
            errors[type(exc).__name__] += 1
            conn[1].close()
            return
        if due >= counted:
            lat.append(time.perf_counter() - due)
            if not ok(status, body):
                errors[f"http {status}" if status != 200 else "application error"] += 1
        idle.append(conn)

    tasks = []
    start = due = time.perf_counter()
    counted = start + warmup_s
    i = 0
    while due < counted + seconds:
        due += float(rng.exponential(1.0 / rate))
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(one(requests[i % len(requests)], due)))
        i += 1
    await asyncio.gather(*tasks)
    for _, writer in idle:
        writer.close()
    return lat, dict(errors)


def _open_job(
    args: tuple[str, list[bytes], float, float, Callable[..., bool], int, float],
) -> tuple[list[float], dict[str, int]]:
    url, requests, rate, seconds, ok, seed, warmup_s = args
    u = urlsplit(url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    return asyncio.run(_open_process(host, port, requests, rate, seconds, ok, seed, warmup_s))


def open_loop(
    url: str,
    requests: list[bytes],
    rate: float,
    seconds: float,
    processes: int = 1,
    ok: Callable[[int, bytes], bool] = http_ok,
    warmup_s: float = 0.0,
) -> Level:
    """Requests arriving at ``rate`` per second (Poisson), whatever the server's pace, for
    ``seconds`` after ``warmup_s`` not counted; ``concurrency`` of the result is the offered rate."""
    jobs = [(url, requests, rate / processes, seconds, ok, p, warmup_s) for p in range(processes)]
    t0 = time.perf_counter()
    return _level(int(rate), _run_jobs(_open_job, jobs), time.perf_counter() - t0 - warmup_s)


async def _grpc_worker(
    call: Callable[..., Any], requests: list[bytes], start: int, step: int, stop: float
) -> tuple[list[float], Counter[str]]:
    lat: list[float] = []
    errors: Counter[str] = Counter()
    i = start
    while time.perf_counter() < stop:
        t0 = time.perf_counter()
        try:
            await call(requests[i % len(requests)], timeout=60)
            lat.append(time.perf_counter() - t0)
        except grpc.aio.AioRpcError as exc:
            errors[f"grpc {exc.code().name}"] += 1
        i += step
    return lat, errors


def grpc_closed_loop(
    target: str, method: str, requests: list[bytes], concurrency: int, seconds: float
) -> Level:
    """Closed loop over gRPC: ``requests`` are serialized messages sent as they are to ``method``."""

    async def run() -> tuple[list[float], dict[str, int]]:
        async with grpc.aio.insecure_channel(target) as channel:
            call = channel.unary_unary(method)
            stop = time.perf_counter() + seconds
            parts = await asyncio.gather(
                *(_grpc_worker(call, requests, k, concurrency, stop) for k in range(concurrency))
            )
        errors: Counter[str] = Counter()
        for _, e in parts:
            errors.update(e)
        return [x for lat, _ in parts for x in lat], dict(errors)

    t0 = time.perf_counter()
    result = asyncio.run(run())
    return _level(concurrency, [result], time.perf_counter() - t0)
