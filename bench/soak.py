"""Soak: a server under mixed traffic at 70 % of its measured peak for a bounded time, failing on RSS
growth, on any error and on p99 drift; and a deliberately leaking control run that proves the check
catches a leak (the same server with a leak injected from outside the library: a ``sitecustomize``
that keeps 1 MB alive per seed request). Writes bench/results/soak.{json,md}.

    python bench/soak.py [--minutes 10]      # the committed run
    tests/integration/test_soak.py           # the same check, 40 s each, in make test

Traffic, open loop: seed HTTP (aligned face, 55 %), seed gRPC (15 %), KServe v2 `ArcFace` binary
(15 %), `/v1/detect` on a photo (10 %), and gallery writes (5 %: create a subject, enrol a photo, delete
the subject, so the store's size stays level). RSS is the server process plus its children, sampled
every 0.5 s. After the warm-up (the first quarter), the check compares the first and last tenth: RSS
growth at most 5 %, p99 at most 2x, and no failed request.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from facepipe.protos import pipeline_service_pb2 as seed_pb  # noqa: E402
from facepipe.protos import pipeline_service_pb2_grpc as seed_grpc  # noqa: E402
from tests.integration.conftest import Running, start_server, stop_server  # noqa: E402

ADMIN = "soak-admin-key-0123456789"
W = {"x-api-key": ADMIN}
MIX = ("seed",) * 11 + ("grpc",) * 3 + ("kserve",) * 3 + ("detect",) * 2 + ("gallery",)
LEAK = """
import facepipe.edges.seed as _seed
_kept, _predict = [], _seed.predict
async def _leaky(state, name, feed, *a, **k):
    _kept.append(b"\x01" * (1 << 20))  # 1 MB per seed request, written (so resident), never freed
    return await _predict(state, name, feed, *a, **k)
_seed.predict = _leaky
"""


@dataclass
class Verdict:
    label: str
    rate: float
    requests: int = 0
    failed: int = 0
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    p99_start_ms: float = 0.0
    p99_end_ms: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def growth(self) -> float:
        return self.rss_end_mb / self.rss_start_mb - 1 if self.rss_start_mb else 0.0

    @property
    def passed(self) -> bool:
        return not self.failures


def rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` and its descendants, in MB."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return total


class Traffic:
    def __init__(self, run: Running, lfw: Path) -> None:
        self.run = run
        faces = sorted((lfw / "images").glob("*/*.jpg"))
        self.face = faces[0].read_bytes()
        self.photo = faces[1].read_bytes()
        self.b64 = base64.b64encode(self.face).decode()
        self.counter = itertools.count()

    async def one(self, kind: str, http: httpx.AsyncClient, stub: seed_grpc.PipelineServiceStub) -> bool:
        if kind == "seed":
            r = await http.post("/ArcFace/prediction", json={"key": ["image"], "value": [self.b64]})
            return r.status_code == 200 and r.json()["err_no"] == 0
        if kind == "grpc":
            reply = await stub.inference(seed_pb.Request(key=["image"], value=[self.b64]), timeout=30)
            return bool(reply.err_no == 0)
        if kind == "kserve":
            doc = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [self.b64]}]}
            r = await http.post("/v2/models/ArcFace/infer", json=doc)
            return r.status_code == 200
        if kind == "detect":
            r = await http.post("/v1/detect", files=[("a", ("p.jpg", self.photo, "image/jpeg"))])
            return r.status_code == 200
        sid = f"soak-{next(self.counter)}"
        ok = (await http.post("/v1/subjects", json={"id": sid, "name": sid}, headers=W)).status_code == 201
        r = await http.post(
            f"/v1/subjects/{sid}/faces", files=[("a", ("f.jpg", self.face, "image/jpeg"))], headers=W
        )
        ok = ok and r.status_code in (200, 201)
        return ok and (await http.delete(f"/v1/subjects/{sid}", headers=W)).status_code == 200

    async def drive(self, rate: float, seconds: float, rows: list[tuple[float, float, bool, str]]) -> None:
        async with (
            httpx.AsyncClient(base_url=self.run.url, timeout=30) as http,
            grpc.aio.insecure_channel(self.run.grpc) as channel,
        ):
            stub = seed_grpc.PipelineServiceStub(channel)  # type: ignore[no-untyped-call]
            kinds = itertools.cycle(MIX)
            start = time.monotonic()
            tasks = []

            async def timed(kind: str) -> None:
                t0 = time.monotonic()
                try:
                    ok = await self.one(kind, http, stub)
                except (httpx.HTTPError, grpc.RpcError, ValueError):
                    ok = False
                rows.append((t0 - start, time.monotonic() - t0, ok, kind))

            for i in itertools.count():
                due = start + i / rate
                if due - start >= seconds:
                    break
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                tasks.append(asyncio.create_task(timed(next(kinds))))
            await asyncio.gather(*tasks)


def peak(traffic: Traffic, seconds: float = 10.0) -> float:
    """Requests/s the server completes with 8 callers at once, on the soak's mix."""

    async def caller(http: httpx.AsyncClient, stub: seed_grpc.PipelineServiceStub, end: float) -> int:
        n, kinds = 0, itertools.cycle(MIX)
        while time.monotonic() < end:
            await traffic.one(next(kinds), http, stub)
            n += 1
        return n

    async def run() -> float:
        async with (
            httpx.AsyncClient(base_url=traffic.run.url, timeout=30) as http,
            grpc.aio.insecure_channel(traffic.run.grpc) as channel,
        ):
            stub = seed_grpc.PipelineServiceStub(channel)  # type: ignore[no-untyped-call]
            t0 = time.monotonic()
            done = await asyncio.gather(*(caller(http, stub, t0 + seconds) for _ in range(8)))
            return sum(done) / (time.monotonic() - t0)

    return asyncio.run(run())


def soak(
    models: Path, lfw: Path, tmp: Path, seconds: float, leak: bool = False, rate: float | None = None
) -> Verdict:
    env_dir = tmp / "site"
    env_dir.mkdir(parents=True, exist_ok=True)
    if leak:
        (env_dir / "sitecustomize.py").write_text(LEAK)
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(env_dir), saved) if p)
    try:
        run = start_server(models, tmp, {"auth": {"api_keys": [ADMIN]}})
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = saved
    try:
        traffic = Traffic(run, lfw)
        rate = rate or 0.7 * peak(traffic)
        rows: list[tuple[float, float, bool, str]] = []
        samples: list[tuple[float, float]] = []
        stop = threading.Event()

        def sample() -> None:
            t0 = time.monotonic()
            while not stop.is_set():
                samples.append((time.monotonic() - t0, rss_mb(run.proc.pid)))
                stop.wait(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        asyncio.run(traffic.drive(rate, seconds, rows))
        stop.set()
        sampler.join()
        return judge("leaking control" if leak else "facepipe", rate, seconds, rows, samples)
    finally:
        stop_server(run)


def judge(
    label: str,
    rate: float,
    seconds: float,
    rows: list[tuple[float, float, bool, str]],
    samples: list[tuple[float, float]],
) -> Verdict:
    warm = seconds / 4
    tenth = (seconds - warm) / 10
    first = (warm, warm + tenth)
    last = (seconds - tenth, seconds)

    def within(t: float, span: tuple[float, float]) -> bool:
        return span[0] <= t < span[1]

    def p99(span: tuple[float, float]) -> float:
        lat = sorted(d for t, d, _, _ in rows if within(t, span))
        return 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else 0.0

    rss_first = statistics.median([m for t, m in samples if within(t, first)] or [0.0])
    rss_last = statistics.median([m for t, m in samples if within(t, (last[0], last[1] + 5))] or [0.0])
    v = Verdict(label, round(rate, 1), len(rows), sum(not ok for *_, ok, _ in rows))
    v.rss_start_mb, v.rss_end_mb = round(rss_first, 1), round(rss_last, 1)
    v.p99_start_ms, v.p99_end_ms = round(p99(first), 1), round(p99(last), 1)
    if v.failed:
        kinds = sorted({k for _, _, ok, k in rows if not ok})
        v.failures.append(f"{v.failed} failed requests ({', '.join(kinds)})")
    if v.growth > 0.05:
        v.failures.append(f"RSS grew {100 * v.growth:.1f} % after warm-up (limit 5 %)")
    if v.p99_start_ms and v.p99_end_ms > 2 * v.p99_start_ms:
        v.failures.append(f"p99 drifted {v.p99_start_ms} -> {v.p99_end_ms} ms (limit 2x)")
    return v


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--control-minutes", type=float, default=2)
    args = ap.parse_args()
    models = Path(os.environ.get("FACEPIPE_MODELS", ROOT / "models"))
    lfw = ROOT.parent / "shared" / "data" / "lfw-dev"
    verdicts = []
    with tempfile.TemporaryDirectory() as tmp:
        verdicts.append(soak(models, lfw, Path(tmp) / "a", 60 * args.minutes))
    with tempfile.TemporaryDirectory() as tmp:
        rate = verdicts[0].rate
        verdicts.append(soak(models, lfw, Path(tmp) / "b", 60 * args.control_minutes, leak=True, rate=rate))
    for v in verdicts:
        print(json.dumps(asdict(v) | {"passed": v.passed}), flush=True)
    res = {
        "machine": f"{platform.node()}, {os.cpu_count()} cores",
        "command": f"python bench/soak.py --minutes {args.minutes:g} "
        f"--control-minutes {args.control_minutes:g}",
        "verdicts": [asdict(v) | {"passed": v.passed, "growth": v.growth} for v in verdicts],
    }
    out = ROOT / "bench" / "results"
    (out / "soak.json").write_text(json.dumps(res, indent=2))
    lines = [
        "# Soak: mixed traffic at 70 % of the measured peak",
        "",
        f"Machine: {res['machine']} (server and load generator on the same cores). Command: "
        f"`{res['command']}`. Mix: seed HTTP 55 %, seed gRPC 15 %, KServe binary 15 %, /v1/detect 10 %, "
        "gallery create + enrol + delete 5 %. Checks after a warm-up of a quarter of the run, first "
        "tenth against last tenth: RSS growth ≤ 5 %, p99 ≤ 2x, no failed request. The control run is "
        "the same server with 1 MB kept alive per seed request (injected by a sitecustomize).",
        "",
        "| run | rate | requests | failed | RSS first → last tenth | p99 first → last tenth | verdict |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for v in verdicts:
        verdict = "pass" if v.passed else "FAIL: " + "; ".join(v.failures)
        lines.append(
            f"| {v.label} | {v.rate}/s | {v.requests} | {v.failed} | {v.rss_start_mb} → {v.rss_end_mb} MB "
            f"({100 * v.growth:+.1f} %) | {v.p99_start_ms} → {v.p99_end_ms} ms | {verdict} |"
        )
    (out / "soak.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
