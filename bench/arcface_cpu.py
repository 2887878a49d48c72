"""Closed-loop sweep on the seed endpoint (POST /ArcFace/prediction) with real LFW images, plus the
bare in-process model ceiling measured in the same run. Writes bench/results/cpu-arcface.{json,md}.

    .venv/bin/python bench/arcface_cpu.py [--seconds 8] [--levels 1,4,8,16,32]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.integration.conftest import start_server, stop_server  # noqa: E402


def ceiling(model: Path, seconds: float = 4.0) -> dict[str, float]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = os.cpu_count() or 1
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    out = {}
    for batch in (1, 8, 16, 32):
        x = np.random.default_rng(0).uniform(-1, 1, (batch, 112, 112, 3)).astype(np.float32)
        sess.run(None, {"input": x})
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            sess.run(None, {"input": x})
            n += batch
        out[f"batch{batch}_img_s"] = n / (time.perf_counter() - t0)
    x1 = np.zeros((1, 112, 112, 3), np.float32)
    lat = []
    for _ in range(200):
        t0 = time.perf_counter()
        sess.run(None, {"input": x1})
        lat.append((time.perf_counter() - t0) * 1e3)
    out["batch1_ms_p50"] = float(np.percentile(lat, 50))
    return out


async def closed_loop(url: str, bodies: list[bytes], concurrency: int, seconds: float) -> dict[str, float]:
    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def worker(k: int) -> None:
            nonlocal errors
            i = k
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                r = await client.post(url, content=bodies[i % len(bodies)])
                if r.status_code != 200 or r.json()["err_no"] != 0:
                    errors += 1
                lat.append((time.perf_counter() - t0) * 1e3)
                i += concurrency

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        wall = time.perf_counter() - t0
    return {
        "concurrency": concurrency,
        "requests": len(lat),
        "qps": len(lat) / wall,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "errors": errors,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--levels", default="1,4,8,16,32")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/lfw-dev")
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    args = ap.parse_args()
    files = sorted((args.data / "images").rglob("*.jpg"))[:700]
    images = [base64.b64encode(f.read_bytes()).decode() for f in files]
    bodies = [
        json.dumps({"key": ["image"], "value": [b64], "logid": i}).encode() for i, b64 in enumerate(images)
    ]
    bare = ceiling(args.models / "mobilefacenet/1/model.onnx")
    with tempfile.TemporaryDirectory() as tmp:
        run = start_server(args.models, Path(tmp), {"dag": {"tracer": {"interval_s": 0}}})
        try:
            url = run.url + "/ArcFace/prediction"
            asyncio.run(closed_loop(url, bodies, 4, 2.0))  # warm-up
            levels = [int(c) for c in args.levels.split(",")]
            sweep = [asyncio.run(closed_loop(url, bodies, c, args.seconds)) for c in levels]
        finally:
            stop_server(run)
    result = {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "command": "python bench/arcface_cpu.py " + " ".join(sys.argv[1:]),
        "images": len(files),
        "ceiling": bare,
        "sweep": sweep,
    }
    out = ROOT / "bench/results"
    (out / "cpu-arcface.json").write_text(json.dumps(result, indent=2))
    best = max(bare[k] for k in bare if k.endswith("img_s"))
    lines = [
        "# ArcFace seed endpoint on CPU",
        "",
        f"Machine: {result['machine']}; server and load generator on the same cores.",
        f"Command: `{result['command']}`; {len(files)} real LFW images (250x250 JPEG), closed loop, "
        f"{args.seconds:.0f} s per level.",
        "",
        f"Bare model ceiling (onnxruntime, {os.cpu_count()} threads, in-process, no I/O): "
        + ", ".join(f"{k} {v:.1f}" for k, v in bare.items()),
        "",
        "| concurrency | QPS | % of ceiling | p50 ms | p99 ms | errors |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {s['concurrency']} | {s['qps']:.1f} | {100 * s['qps'] / best:.0f} % | {s['p50_ms']:.1f} | "
        f"{s['p99_ms']:.1f} | {s['errors']} |"
        for s in sweep
    ]
    (out / "cpu-arcface.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
