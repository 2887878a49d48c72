"""Closed-loop sweep on the seed endpoint (POST /ArcFace/prediction) with real LFW images, plus the
bare in-process model ceiling measured in the same run. Writes bench/results/cpu-arcface.{json,md}.

    .venv/bin/python bench/arcface_cpu.py [--seconds 8] [--levels 1,4,8,16,32,64]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.bare import batch1_p50_ms, rate, runner  # noqa: E402
from bench.stages import stage_counters  # noqa: E402
from facepipe.config import load_config  # noqa: E402
from facepipe.engine.stage import stage_config  # noqa: E402
from facepipe.models.bundle import Bundle, load_bundle  # noqa: E402
from facepipe.runtime import cpu_engine  # noqa: E402
from facepipe.tools.loadgen import closed_loop, encode_post, seed_ok  # noqa: E402
from tests.integration.conftest import start_server, stop_server  # noqa: E402


def crops(files: list[Path], n: int = 64) -> np.ndarray:
    """Real inputs, preprocessed as the server does (decode, resize to 112, (x - 127.5) / 128)."""
    imgs = [cv2.resize(cv2.imread(str(f))[..., ::-1], (112, 112)) for f in files[:n]]
    return ((np.stack(imgs).astype(np.float32) - 127.5) / 128.0).astype(np.float32)


def ceiling(
    model: Bundle, x: np.ndarray, engine: str, layout: tuple[int, int], seconds: float = 3.0
) -> dict[str, float]:
    """The server's runtime at every workers x threads layout and batch size (the server's own
    ``layout`` among them), and one image's latency."""
    cores = os.cpu_count() or 1
    shapes = sorted({(1, cores), (cores, 1), layout})
    sessions = {(w, t): [runner(model, t, engine) for _ in range(w)] for w, t in shapes}  # opened once
    out = {}
    for batch in (1, 4, 8, 16):
        for (workers, threads), runs in sessions.items():
            out[f"{workers}x{threads}thr_b{batch}_img_s"] = rate(runs, x[:batch], seconds)
    one = {threads: runs[0] for (_, threads), runs in sessions.items()}  # a session per thread count
    for threads in sorted({1, cores}):
        out[f"batch1_{threads}thr_ms_p50"] = batch1_p50_ms(one[threads], x)
    return out


def best_of(bare: dict[str, float], prefix: str = "") -> tuple[str, float]:
    """The highest img/s of the ceiling, over every layout or those whose key starts with ``prefix``."""
    key = max((k for k in bare if k.endswith("img_s") and k.startswith(prefix)), key=lambda k: bare[k])
    return key, bare[key]


def batched(base_url: str) -> tuple[float, float]:
    """(items, batches) the ArcFace stage has run so far, from the server's /metrics."""
    arcface = stage_counters(base_url).get(("ArcFace", "ArcFace"), {})
    return arcface.get("items", 0.0), arcface.get("batches", 0.0)


def level(base_url: str, reqs: list[bytes], concurrency: int, seconds: float) -> dict:
    """One closed-loop level, with the mean batch the ArcFace stage ran meanwhile (one process's)."""
    items0, batches0 = batched(base_url)
    row = asdict(closed_loop(base_url + "/ArcFace/prediction", reqs, concurrency, seconds, ok=seed_ok))
    items1, batches1 = batched(base_url)
    return row | {"mean_batch": (items1 - items0) / max(batches1 - batches0, 1)}


def sweep(
    args: argparse.Namespace,
    requests: list[bytes],
    workers: int,
    threads: int,
    levels: list[int],
    processes: int = 1,
    thread_op: bool = True,
    wait_ms: float = 0.0,
) -> dict:
    op = {
        "concurrency": workers,
        "batch_size": args.batch,
        "auto_batching_timeout": wait_ms,
        "local_service_conf": {"thread_num": threads, "engine": args.engine},
    }
    with tempfile.TemporaryDirectory() as tmp:
        dag = {"tracer": {"interval_s": 0}, "is_thread_op": thread_op}
        extra = {"dag": dag, "op": {"ArcFace": op}, "worker_num": processes}
        run = start_server(args.models, Path(tmp), extra)
        try:
            url = run.url + "/ArcFace/prediction"
            reqs = [encode_post(url, b) for b in requests]
            closed_loop(url, reqs, 4, 2.0, ok=seed_ok)  # warm-up
            return {
                "op": op,
                "worker_num": processes,
                "is_thread_op": thread_op,
                "levels": [level(run.url, reqs, c, args.seconds) for c in levels],
            }
        finally:
            stop_server(run)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--levels", default="1,2,4,8,16,32,64")
    shipped = load_config(ROOT / "config.yml")
    op = shipped.op_config("ArcFace")
    process_ops = stage_config(shipped, "ArcFace").process
    ap.add_argument("--workers", type=int, default=op.concurrency, help="ArcFace op concurrency")
    ap.add_argument("--threads", type=int, default=op.local_service_conf.thread_num, help="per worker")
    ap.add_argument("--batch", type=int, default=op.batch_size)
    ap.add_argument("--wait-ms", type=float, default=op.auto_batching_timeout)
    ap.add_argument("--thread-ops", action="store_true", default=not process_ops, help="workers as threads")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/lfw-dev")
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    ap.add_argument("--out", default="cpu-arcface")
    ap.add_argument("--engine", default="auto", help="auto (OpenVINO here), openvino or onnxruntime")
    args = ap.parse_args()
    files = sorted((args.data / "images").rglob("*.jpg"))[:700]
    bodies = [
        json.dumps(
            {"key": ["image"], "value": [base64.b64encode(f.read_bytes()).decode()], "logid": i}
        ).encode()
        for i, f in enumerate(files)
    ]
    bundle = load_bundle(args.models / "mobilefacenet/1")
    engine = cpu_engine(bundle, args.engine)
    bare = ceiling(bundle, crops(files), args.engine, (args.workers, args.threads))
    levels = [int(c) for c in args.levels.split(",")]
    shipped = (args.workers, args.threads, 1, args.thread_ops, args.wait_ms)
    main_run = sweep(args, bodies, args.workers, args.threads, levels, 1, args.thread_ops, args.wait_ms)
    layouts = [(args.workers, args.threads, 1, args.thread_ops, 0.0), (2, 2, 1, True, args.wait_ms)]
    layouts += [(2, 1, 1, False, args.wait_ms), (1, 2, 1, True, 0.0), (2, 1, 1, True, 0.0)]
    layouts += [(1, 1, 2, True, 0.0), (2, 1, 2, True, 0.0)]
    others = [
        sweep(args, bodies, w, t, [1, 8, 16], p, thread_op, wait)
        for w, t, p, thread_op, wait in layouts
        if (w, t, p, thread_op, wait) != shipped
    ]
    op, sweep_rows = main_run["op"], main_run["levels"]
    result = {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "command": "python bench/arcface_cpu.py " + " ".join(sys.argv[1:]),
        "server_op": op,
        "engine": engine,
        "images": len(files),
        "ceiling": bare,
        "sweep": sweep_rows,
        "alternatives": others,
    }
    out = ROOT / "bench/results"
    (out / f"{args.out}.json").write_text(json.dumps(result, indent=2))
    best_key, best = best_of(bare)
    same_key, same = best_of(bare, f"{args.workers}x{args.threads}thr_")
    lines = [
        "# ArcFace seed endpoint on CPU",
        "",
        f"Machine: {result['machine']}; server and load generator (facepipe.tools.loadgen, 1 process) on the "
        "same cores.",
        f"Command: `{result['command']}`; {len(files)} real LFW images (250x250 JPEG, base64 in the seed's "
        f"JSON), closed loop, {args.seconds:.0f} s per level. Server ArcFace op (config.yml as shipped): "
        f"{json.dumps(op)}, {'threads' if args.thread_ops else 'process ops (is_thread_op: false)'}.",
        "",
        f"Bare model ceiling ({engine} in-process, the server's runtime, no I/O, no decode), in the "
        f"server's layout ({args.workers} sessions x {args.threads} threads side by side), best batch: "
        f"**{same:.1f} img/s** ({same_key}); best of every workers x threads x batch: **{best:.1f} img/s** "
        f"({best_key}). All: " + ", ".join(f"{k} {v:.1f}" for k, v in bare.items()),
        "",
        "| concurrency | QPS | % of same-layout ceiling | % of best ceiling | p50 ms | p90 ms | p99 ms | "
        "mean batch | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {s['concurrency']} | {s['qps']:.1f} | {100 * s['qps'] / same:.0f} % | "
        f"{100 * s['qps'] / best:.0f} % | {s['p50_ms']:.1f} | {s['p90_ms']:.1f} | {s['p99_ms']:.1f} | "
        f"{s['mean_batch']:.1f} | {sum(s['errors'].values())} |"
        for s in sweep_rows
    ]
    c1 = next((s for s in sweep_rows if s["concurrency"] == 1), None)
    bare1 = bare.get(f"batch1_{args.threads}thr_ms_p50")
    if c1 and bare1:
        lines += [
            "",
            f"Concurrency 1: p50 {c1['p50_ms']:.1f} ms against bare batch-1 inference at {args.threads} "
            f"thread(s) {bare1:.1f} ms: +{c1['p50_ms'] - bare1:.1f} ms (the request's decode, HTTP and "
            "hand-offs).",
        ]
    lines += [
        "",
        "Other layouts, same run (`worker_num` server processes x ArcFace op `concurrency` x `thread_num`; "
        "*process ops*: `dag.is_thread_op: false`, each worker's op in a child process of its own; "
        "*wait*: `auto_batching_timeout`; *mean batch*: what the ArcFace stage ran, from /metrics (with 2 "
        "processes, one process's)):",
        "",
        "| processes x workers x threads | wait ms | c=1 p50 ms | c=8 QPS | c=8 p99 ms | c=8 mean batch | "
        "c=16 QPS | c=16 p99 ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for alt in [main_run, *others]:
        a, (l1, l8, l16) = (
            alt["op"],
            alt["levels"][:1] + [r for r in alt["levels"] if r["concurrency"] in (8, 16)],
        )
        ops = "" if alt.get("is_thread_op", True) else ", process ops"
        ops += " (shipped)" if alt is main_run else ""
        layout = f"{alt.get('worker_num', 1)} x {a['concurrency']} x {a['local_service_conf']['thread_num']}"
        lines.append(
            f"| {layout}{ops} | {a['auto_batching_timeout']:g} | "
            f"{l1['p50_ms']:.1f} | "
            f"{l8['qps']:.1f} | {l8['p99_ms']:.1f} | {l8['mean_batch']:.1f} | {l16['qps']:.1f} | "
            f"{l16['p99_ms']:.1f} |"
        )
    (out / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
