"""Where the half-rate latency goes on the GPU, by the number of server processes: for each
``worker_num``, the peak single-image rate, the open-loop latency at half that rate, and the ArcFace
op's own time (queue wait and run, from ``pipeline.profile``) of requests sampled meanwhile.
Writes bench/results/gpu-layouts.{json,md}.

    python bench/gpu_layouts.py run [--workers 12,6,4]   # on the GPU machine (after gpu_h100 prepare)
    python bench/gpu_layouts.py report FILE              # here: gpu-layouts.md from the run's JSON
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.gpu_h100 import crops, in_child, model_numbers, mps, seed_body, server_config  # noqa: E402


def profiled(url: str, blobs: list[bytes], out: list[tuple[float, float, float]]) -> None:
    """Sequential profiled requests (10 ms apart): (total ms, ArcFace queue ms, ArcFace run ms)."""
    import httpx

    with httpx.Client() as client:
        for blob in blobs:
            body, kind = seed_body(blob, profile=True), {"content-type": "application/json"}
            t0 = time.perf_counter()
            reply = client.post(url, content=body, headers=kind).json()
            total = (time.perf_counter() - t0) * 1e3
            stage = json.loads(reply["value"][-1])[0]
            out.append((total, stage["in_ms"], stage["midp_ms"]))
            time.sleep(0.01)


def layout(models: Path, workers: int, arc_wait_ms: float) -> dict:
    from facepipe.tools import loadgen
    from tests.integration.conftest import start_server, stop_server

    _, blobs = crops()
    with tempfile.TemporaryDirectory() as tmp:
        run = start_server(models, Path(tmp), server_config(workers, arc_wait_ms), ready_s=240)
        try:
            url = run.url + "/ArcFace/prediction"
            single = [loadgen.encode_post(url, seed_body(b)) for b in blobs[:500]]
            loadgen.closed_loop(url, single, 256, 3, 6, loadgen.seed_ok)  # warm-up
            peak = loadgen.closed_loop(url, single, 512, 6, 6, loadgen.seed_ok)
            samples: list[tuple[float, float, float]] = []
            sampler = threading.Thread(target=profiled, args=(url, blobs[500:700], samples))
            timer = threading.Timer(3.0, sampler.start)  # after the open loop's warm-up
            timer.start()
            half = loadgen.open_loop(url, single, peak.qps / 2, 8, 8, loadgen.seed_ok, 2)
            timer.join()
            sampler.join()
        finally:
            stop_server(run)
    pct = np.percentile(np.array(samples), [50, 99], axis=0)
    row = {
        "worker_num": workers,
        "peak_req_s": peak.qps,
        "half_rate": peak.qps / 2,
        "half_p50_ms": half.p50_ms,
        "half_p99_ms": half.p99_ms,
        "half_errors": half.errors,
        "sampled": len(samples),
    }
    for i, name in enumerate(("total", "arcface_queue", "arcface_run")):
        row[f"{name}_p50_ms"], row[f"{name}_p99_ms"] = float(pct[0, i]), float(pct[1, i])
    print(row, flush=True)
    return row


def report(src: Path, out: Path) -> None:
    res = json.loads(src.read_text())
    (out / "gpu-layouts.json").write_text(json.dumps(res, indent=2))
    lines = [
        "# GPU: half-rate latency by the number of server processes",
        "",
        f"Machine: {res['machine']}. Command: `{res['command']}` (after `python bench/gpu_h100.py "
        "prepare` here); the server config of bench/gpu_h100.py, single-image seed requests. Per layout: "
        "the closed-loop peak at 512 clients, then Poisson arrivals at half that rate for 8 s, while 200 "
        "sequential requests ask for `pipeline.profile`: the ArcFace op's queue wait and its own run "
        "time (decode, and the GPU call with its wait for the device).",
        "",
        "| processes | MPS | peak req/s | half rate | p50 ms | p99 ms | sampled p50 / p99 ms | "
        "ArcFace queue p50 / p99 ms | ArcFace run p50 / p99 ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['worker_num']} | {r.get('mps', 'off')} | {r['peak_req_s']:,.0f} | {r['half_rate']:,.0f}/s | "
        f"{r['half_p50_ms']:.1f} | "
        f"{r['half_p99_ms']:.1f} | {r['total_p50_ms']:.1f} / {r['total_p99_ms']:.1f} | "
        f"{r['arcface_queue_p50_ms']:.1f} / {r['arcface_queue_p99_ms']:.1f} | "
        f"{r['arcface_run_p50_ms']:.1f} / {r['arcface_run_p99_ms']:.1f} |"
        for r in res["layouts"]
    ]
    (out / "gpu-layouts.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["run", "report"])
    ap.add_argument("file", nargs="?", type=Path)
    ap.add_argument("--workers", default="12,6,4")
    ap.add_argument("--arc-wait-ms", type=float, default=5.0)
    ap.add_argument("--mps", default="off", help="off, on or off,on: run the layouts with CUDA MPS")
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ROOT / "bench/results")))
    args = ap.parse_args()
    if args.what == "report":
        report(args.file or ROOT / "bench/results/gpu-layouts.json", ROOT / "bench/results")
        return
    gpu = in_child(model_numbers, args.models, True)["gpu"]
    res = {
        "machine": f"{platform.node()}, {gpu}, {os.cpu_count()} cores",
        "command": "python bench/gpu_layouts.py run "
        f"--workers {args.workers} --arc-wait-ms {args.arc_wait_ms} --mps {args.mps}",
        "layouts": [],
    }
    for flag in args.mps.split(","):
        with mps(flag == "on") as up:
            if flag == "on" and not up:
                print("CUDA MPS did not come up; its layouts are left out", flush=True)
                continue
            for w in args.workers.split(","):
                res["layouts"].append({"mps": flag, **layout(args.models, int(w), args.arc_wait_ms)})
                args.out.mkdir(parents=True, exist_ok=True)  # after each layout: a cut run keeps its rows
                (args.out / "gpu-layouts.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
