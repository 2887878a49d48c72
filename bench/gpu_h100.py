"""GPU numbers: the model-only ceiling, fp16 against fp32 on real faces, and the server end to end.
Writes bench/results/gpu-h100.{json,md}.

    python bench/gpu_h100.py prepare          # here: aligned lfw-dev crops + 500 photos into .gpu/
    python bench/gpu_h100.py run              # on the GPU machine (server and load on one box)
    python bench/gpu_h100.py report FILE [EARLIER ...]   # here: gpu-h100.md from the run's JSON

``prepare`` aligns every lfw-dev image with the reference landmarks (JPEG q95 crops, so fp16 and fp32
see identical pixels) and copies 500 of the 250x250 photos; the GPU machine has no copy of the data.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
DATA = ROOT / ".gpu"


def prepare(lfw: Path) -> None:
    import cv2

    from facepipe.face.align import align
    from facepipe.tools.eval_server import reference_landmarks

    ref = reference_landmarks(lfw / "landmarks_mtcnn.tsv")
    DATA.mkdir(exist_ok=True)
    names, blobs = [], []
    for name, pts in sorted(ref.items()):
        rgb = cv2.cvtColor(cv2.imread(str(lfw / "images" / name)), cv2.COLOR_BGR2RGB)
        crop = align(rgb, pts)
        blobs.append(
            cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])[1]
        )
        names.append(name)
    sizes = np.array([len(b) for b in blobs])
    np.savez(DATA / "crops.npz", names=np.array(names), sizes=sizes, data=np.concatenate(blobs))
    (DATA / "pairs.txt").write_bytes((lfw / "pairs.txt").read_bytes())
    photos = DATA / "photos"
    photos.mkdir(exist_ok=True)
    for p in sorted((lfw / "images").glob("*/*.jpg"))[:500]:
        (photos / p.name).write_bytes(p.read_bytes())
    print(f"{len(names)} crops ({sizes.sum() / 2**20:.1f} MB), 500 photos in {DATA}")


def crops() -> tuple[list[str], list[bytes]]:
    d = np.load(DATA / "crops.npz")
    offs = np.concatenate([[0], np.cumsum(d["sizes"])])
    data = d["data"].tobytes()
    return list(d["names"]), [data[offs[i] : offs[i + 1]] for i in range(len(offs) - 1)]


def ceiling(bundle: object) -> dict:
    import torch

    from facepipe.runtime import RuntimeSpec, open_session

    out = {}
    for precision in ("fp16", "fp32"):
        s = open_session(bundle, RuntimeSpec(device="cuda", precision=precision))  # type: ignore[arg-type]
        for batch in (32, 128, 512):
            x = torch.randn(batch, 112, 112, 3, device="cuda").to(s.dtype)
            s._forward(x)
            torch.cuda.synchronize()
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < 2:
                s._forward(x)
                n += batch
            torch.cuda.synchronize()
            out[f"{precision}_b{batch}"] = n / (time.perf_counter() - t0)
    return out


def precision_check(bundle: object) -> dict:
    import cv2

    from facepipe.runtime import RuntimeSpec, open_session
    from facepipe.tools.evaluation import kfold_accuracy, read_lfw_pairs

    names, blobs = crops()
    pixels = np.stack(
        [cv2.cvtColor(cv2.imdecode(np.frombuffer(b, np.uint8), 1), cv2.COLOR_BGR2RGB) for b in blobs]
    )
    emb = {}
    for precision in ("fp32", "fp16"):
        s = open_session(bundle, RuntimeSpec(device="cuda", precision=precision))  # type: ignore[arg-type]
        e = s.run_pixels(pixels)[0]
        emb[precision] = e / np.linalg.norm(e, axis=1, keepdims=True)
    cos = (emb["fp32"] * emb["fp16"]).sum(1)
    index = {n: i for i, n in enumerate(names)}
    pairs = read_lfw_pairs(DATA / "pairs.txt")
    labels, folds = np.array([p.same for p in pairs]), np.array([p.fold for p in pairs])
    acc = {}
    for precision, e in emb.items():
        scores = np.array([e[index[p.left]] @ e[index[p.right]] for p in pairs])
        acc[precision] = kfold_accuracy(scores, labels, folds).mean
    return {"faces": len(names), "cos_min": float(cos.min()), "cos_mean": float(cos.mean()), "lfw": acc}


def kserve_binary(url: str, images: list[bytes]) -> bytes:
    from facepipe.tools.loadgen import encode_post

    raw = b"".join(struct.pack("<I", len(b)) + b for b in images)
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "image",
                    "shape": [len(images)],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    ).encode()
    return encode_post(
        url, head + raw, "application/octet-stream", {"Inference-Header-Content-Length": str(len(head))}
    )


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, from /proc/stat."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)


@contextlib.contextmanager
def mps(on: bool) -> Iterator[bool]:
    """CUDA MPS for the block when ``on``: one control daemon, so that the server processes' kernels
    share the GPU instead of time-slicing between contexts. Yields whether a CUDA client came up."""
    if not on:
        yield False
        return
    subprocess.run(["nvidia-cuda-mps-control", "-d"], check=True)
    try:
        probe = [sys.executable, "-c", "import torch; torch.zeros(1, device='cuda'); print('ok')"]
        probed = subprocess.run(probe, check=False, capture_output=True, text=True, timeout=120)
        yield probed.stdout.strip() == "ok"
    finally:
        subprocess.run(["nvidia-cuda-mps-control"], input="quit\n", text=True, check=False)
        time.sleep(2)


def server_config(workers: int, arc_wait_ms: float) -> dict:
    """The GPU server's config: every model op on CUDA in fp16, ``workers`` server processes."""
    gpu = {"device_type": 1, "devices": "0", "precision": "fp16"}
    return {
        "worker_num": workers,
        "max_body_bytes": 64 * 2**20,
        "dag": {"tracer": {"interval_s": 0}, "channel_size": 4096},
        "op": {
            "decode": {"concurrency": 8, "batch_size": 64},
            "ArcFace": {
                "concurrency": 2,
                "batch_size": 512,
                "auto_batching_timeout": arc_wait_ms,
                "local_service_conf": gpu,
            },
            "detect": {"concurrency": 4, "batch_size": 32, "local_service_conf": gpu},
            "align": {"concurrency": 4, "batch_size": 32},
            "embed": {
                "concurrency": 2,
                "batch_size": 256,
                "auto_batching_timeout": 2,
                "local_service_conf": gpu,
            },
        },
    }


def seed_body(blob: bytes, profile: bool = False) -> bytes:
    """A seed ``ArcFace`` request body for one encoded crop (``profile``: ask for stage timings)."""
    import base64

    doc = {"key": ["image"], "value": [base64.b64encode(blob).decode()]}
    if profile:
        doc = {"key": ["image", "pipeline.profile"], "value": [*doc["value"], "1"]}
    return json.dumps(doc).encode()


def server_numbers(models: Path, workers: int, arc_wait_ms: float) -> dict:
    from facepipe.tools import loadgen
    from tests.integration.conftest import start_server, stop_server

    _, blobs = crops()
    photos = [p.read_bytes() for p in sorted((DATA / "photos").glob("*.jpg"))]
    extra = server_config(workers, arc_wait_ms)
    out: dict = {}

    def level(
        key: str, measure: Callable[..., loadgen.Level], *args: Any, per_request: int = 1
    ) -> loadgen.Level:
        """One load level, with how busy all the machine's cores were meanwhile (server and load)."""
        busy0, total0 = cpu_jiffies()
        lv = measure(*args)
        busy1, total1 = cpu_jiffies()
        out[key] = dataclasses.asdict(lv) | {
            "per_s": lv.qps * per_request,
            "cpu_busy": (busy1 - busy0) / max(total1 - total0, 1),
        }
        print(
            key,
            f"{lv.qps * per_request:.0f}/s p50 {lv.p50_ms:.1f} p99 {lv.p99_ms:.1f}",
            out[key]["cpu_busy"],
            lv.errors,
            flush=True,
        )
        return lv

    with tempfile.TemporaryDirectory() as tmp:
        run = start_server(models, Path(tmp), extra, ready_s=240)
        try:
            url = run.url + "/v2/models/ArcFace/infer"
            reqs = [kserve_binary(url, blobs[i : i + 64]) for i in range(0, 64 * 40, 64)]
            loadgen.closed_loop(url, reqs, 32, 5, 4)  # warm-up, not counted: the first seconds run slow
            for c in (32, 64):
                level(f"kserve_binary64_c{c}", loadgen.closed_loop, url, reqs, c, 8, 4, per_request=64)
            seed_url = run.url + "/ArcFace/prediction"
            single = [loadgen.encode_post(seed_url, seed_body(b)) for b in blobs[:500]]
            ok = loadgen.seed_ok
            best = max(
                (
                    level(f"seed_single_c{c}", loadgen.closed_loop, seed_url, single, c, 8, 6, ok)
                    for c in (128, 256, 512)
                ),
                key=lambda lv: lv.qps,
            )
            level("seed_single_half_peak", loadgen.open_loop, seed_url, single, best.qps / 2, 8, 8, ok, 2)
            for detector, levels in (("blazeface", (256, 384)), ("mtcnn", (64,))):
                v1 = run.url + f"/v1/embed?max_faces=1&detector={detector}"
                preqs = [loadgen.encode_post(v1, p, "image/jpeg") for p in photos]
                for c in levels:
                    level(f"v1_embed_photos_{detector}_c{c}", loadgen.closed_loop, v1, preqs, c, 8, 6)
        finally:
            stop_server(run)
            log = Path(tmp) / "server.log"
            out["server_log_tail"] = log.read_text()[-3000:] if log.exists() else ""
    return out


def model_numbers(models: Path, server_only: bool) -> dict:
    """The GPU's name and, unless ``server_only``, the model-only ceiling and the precision check."""
    import torch

    from facepipe.models.bundle import load_bundle

    res: dict = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    if not server_only:
        bundle = load_bundle(models / "mobilefacenet" / "1")
        res["ceiling"] = ceiling(bundle)
        print("ceiling", res["ceiling"], flush=True)
        res["precision"] = precision_check(bundle)
        print("precision", res["precision"], flush=True)
    return res


def in_child(fn: Callable[..., dict], *args: Any) -> dict:
    """``fn(*args)`` in a spawned process: the bench's own process never opens a CUDA context, which
    would share the GPU with the servers' (and keep them off CUDA MPS) for the whole run."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def run(models: Path, out_dir: Path) -> None:
    res = in_child(model_numbers, models, os.environ.get("ONLY") == "server")
    res["cores"] = os.cpu_count()
    res["mps"] = os.environ.get("MPS", "0") == "1"
    workers, arc_wait = os.environ.get("WORKERS", "12"), os.environ.get("ARC_WAIT_MS", "5")
    with mps(res["mps"]) as up:
        if res["mps"] and not up:
            raise SystemExit("MPS=1: CUDA MPS did not come up")
        res["server"] = server_numbers(models, int(workers), float(arc_wait))
    res["machine"] = f"{platform.node()}, {res['gpu']}, {res['cores']} cores"
    env = f"WORKERS={workers} ARC_WAIT_MS={arc_wait}" + (" MPS=1" if res["mps"] else "")
    res["command"] = f"{env} python bench/gpu_h100.py run"
    res["worker_num"] = int(workers)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gpu-h100.json").write_text(json.dumps(res, indent=2))


def best(server: dict, prefix: str, key: str) -> dict:
    """The level whose name starts with ``prefix`` that scored highest on ``key``."""
    return max((v for k, v in server.items() if k.startswith(prefix)), key=lambda v: v[key])


def summary(server: dict) -> dict[str, float]:
    """One run's headline numbers: the best level of each measure, and the half-rate latency."""
    half = server["seed_single_half_peak"]
    return {
        "kserve_faces_s": best(server, "kserve", "per_s")["per_s"],
        "single_req_s": best(server, "seed_single_c", "qps")["qps"],
        "half_p50_ms": half["p50_ms"],
        "half_p99_ms": half["p99_ms"],
        "blazeface_photos_s": best(server, "v1_embed_photos_blazeface", "qps")["qps"],
        "mtcnn_photos_s": best(server, "v1_embed_photos_mtcnn", "qps")["qps"],
    }


def report(src: Path, out: Path, runs: list[Path]) -> None:
    """gpu-h100.md from the run in ``src``; ``runs``: earlier runs of the same code, for the spread
    (kept in the JSON as ``runs``, so that a later report needs only the one file)."""
    res = json.loads(src.read_text())
    if runs:
        res["runs"] = [summary(json.loads(r.read_text())["server"]) for r in runs]
        res["runs"].append(summary(res["server"]))
    res.setdefault("runs", [summary(res["server"])])
    (out / "gpu-h100.json").write_text(json.dumps(res, indent=2))
    c, p, s = res["ceiling"], res["precision"], res["server"]
    kserve, single = best(s, "kserve", "per_s"), best(s, "seed_single_c", "qps")
    photos = {d: best(s, f"v1_embed_photos_{d}", "qps") for d in ("blazeface", "mtcnn")}
    half = s["seed_single_half_peak"]
    lines = [
        "# GPU: H100, server and load generator on one machine",
        "",
        f"Machine: {res['machine']}; torch {res['torch']}. Command: `{res['command']}` (after `python "
        "bench/gpu_h100.py prepare` here). ArcFace and the /v1 detector and embedder on CUDA, fp16, CUDA "
        "graphs per batch bucket, normalisation on the GPU; config in `server_config()`. The model "
        "numbers run in a spawned process before the server starts, so that the bench holds no CUDA "
        "context of its own while the server is measured.",
        "",
        "| measure | result | target |",
        "| --- | --- | --- |",
        f"| model-only ceiling, fp16, batch 32 / 128 / 512 | {c['fp16_b32']:,.0f} / {c['fp16_b128']:,.0f} / "
        f"{c['fp16_b512']:,.0f} faces/s | (REFERENCE: ~30k / ~50k) |",
        f"| model-only, fp32, batch 32 / 512 | {c['fp32_b32']:,.0f} / {c['fp32_b512']:,.0f} faces/s | |",
        f"| embed aligned crops, KServe binary, 64 per request (c={kserve['concurrency']}) | "
        f"{kserve['per_s']:,.0f} faces/s, p99 {kserve['p99_ms']:.0f} ms "
        f"({100 * kserve['per_s'] / c['fp16_b512']:.0f} % of the ceiling) | ≥ 20,000 |",
        f"| single-image seed requests (c={single['concurrency']}) | {single['qps']:,.0f} req/s, p99 "
        f"{single['p99_ms']:.0f} ms | ≥ 5,000 |",
        f"| p99 at half that rate (open loop, Poisson, {half['concurrency']}/s, after 2 s of warm-up) | "
        f"{half['p99_ms']:.1f} ms (p50 {half['p50_ms']:.1f}) | ≤ 20 ms |",
        f"| full pipeline, 250x250 photos, /v1/embed, BlazeFace (c={photos['blazeface']['concurrency']}) | "
        f"{photos['blazeface']['qps']:,.0f} images/s, p99 {photos['blazeface']['p99_ms']:.0f} ms | ≥ 2,000 |",
        f"| full pipeline, 250x250 photos, /v1/embed, MTCNN (c={photos['mtcnn']['concurrency']}) | "
        f"{photos['mtcnn']['qps']:,.0f} images/s, p99 {photos['mtcnn']['p99_ms']:.0f} ms | |",
        f"| fp16 vs fp32 on {p['faces']} lfw-dev faces: cosine min / mean | {p['cos_min']:.6f} / "
        f"{p['cos_mean']:.6f} | ≥ 0.9999 |",
        f"| lfw-dev 5-fold accuracy fp32 / fp16 (reference landmarks) | {100 * p['lfw']['fp32']:.2f} % / "
        f"{100 * p['lfw']['fp16']:.2f} % | within 0.05 points |",
    ]
    busy = [v["cpu_busy"] for v in s.values() if isinstance(v, dict) and "cpu_busy" in v]
    lines += [
        "",
        f"Run to run: {len(res['runs'])} runs of this code, in order (the table is the last): "
        + "; ".join(f"{name} {spread(res['runs'], key, fmt)}" for name, key, fmt in SPREAD)
        + ".",
        "",
        f"Where the time goes: the levels kept the 16 cores {100 * min(busy):.0f}-{100 * max(busy):.0f} % "
        "busy (`cpu_busy` in the JSON: server and load generator together). Three things decide the "
        "numbers. (1) CUDA MPS (`MPS=1` runs `nvidia-cuda-mps-control -d` for the server part): without "
        "it each of the 12 server processes holds its own CUDA context and the GPU time-slices between "
        "them; with it their kernels share the GPU. bench/results/gpu-layouts.md has both, by the "
        "number of processes. (2) No other CUDA context on the GPU during the run: the bench used to "
        "measure the model ceiling in its own process, whose context stayed open and was time-sliced "
        "against the servers' (MPS cannot take in a context opened before it started): half-rate p99 "
        "72 and 93 ms in two full runs this session, 15-18 ms since that part runs in a spawned child. "
        "(3) Workers wait for the GPU on a blocking CUDA event, with inputs uploaded from pinned memory: "
        "torch's `.cpu()` spin-waits a core per waiting thread, cores the HTTP front ends need. Also: "
        "each server process exempts what it built before turning ready from Python's cyclic collector "
        "(a full collection walks ~200k objects once PyTorch is loaded, ~70 ms with the GIL held), and "
        "the load generator runs with the collector off. Measured and not kept: one process owning the "
        "GPU for all front ends (branch `experiment/session-host`, slower; its commit message has the "
        "numbers). MTCNN's P-Net runs per image and pyramid scale. "
        + met(res["runs"], "kserve_faces_s", 20_000, "20k faces/s")
        + " "
        + met(res["runs"], "half_p99_ms", -20, "p99 <= 20 ms at half the peak rate")
        + " "
        + met(res["runs"], "blazeface_photos_s", 2_000, "2,000 photos/s"),
    ]
    (out / "gpu-h100.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


SPREAD = [
    ("KServe binary x64", "kserve_faces_s", "{:,.0f} faces/s"),
    ("single-image", "single_req_s", "{:,.0f} req/s"),
    ("BlazeFace photos", "blazeface_photos_s", "{:,.0f}/s"),
    ("p99 at half rate", "half_p99_ms", "{:.0f} ms"),
    ("p50 at half rate", "half_p50_ms", "{:.1f} ms"),
]


def spread(runs: list[dict], key: str, fmt: str) -> str:
    return " / ".join(fmt.format(r[key]) for r in runs)


def met(runs: list[dict], key: str, target: float, what: str) -> str:
    """``target`` < 0: at most -target."""
    n = sum(r[key] >= target if target >= 0 else r[key] <= -target for r in runs)
    return f"{what}: met in {n} of {len(runs)} runs."


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["prepare", "run", "report"])
    ap.add_argument("file", nargs="?", type=Path)
    ap.add_argument("runs", nargs="*", type=Path, help="report: earlier runs, for the spread")
    ap.add_argument("--lfw", type=Path, default=ROOT.parent / "shared/data/lfw-dev")
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ROOT / "bench/results")))
    args = ap.parse_args()
    if args.what == "prepare":
        prepare(args.lfw)
    elif args.what == "run":
        run(args.models, args.out)
    else:
        report(args.file or ROOT / "bench/results/gpu-h100.json", ROOT / "bench/results", args.runs)


if __name__ == "__main__":
    main()
