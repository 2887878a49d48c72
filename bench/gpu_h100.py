"""GPU numbers: the model-only ceiling, fp16 against fp32 on real faces, and the server end to end.
Writes bench/results/gpu-h100.{json,md}.

    python bench/gpu_h100.py prepare          # here: aligned lfw-dev crops + 500 photos into .gpu/
    python bench/gpu_h100.py run              # on the GPU machine (server and load on one box)
    python bench/gpu_h100.py report FILE      # here: gpu-h100.md from the JSON the run wrote

``prepare`` aligns every lfw-dev image with the reference landmarks (JPEG q95 crops, so fp16 and fp32
see identical pixels) and copies 500 of the 250x250 photos; the GPU machine has no copy of the data.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import struct
import sys
import tempfile
import time
from collections.abc import Callable
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
    from facepipe.server_eval import reference_landmarks

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

    from facepipe.serving.runtime import RuntimeSpec, open_session

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

    from facepipe.evaluation import kfold_accuracy, read_lfw_pairs
    from facepipe.serving.runtime import RuntimeSpec, open_session

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
    from facepipe.loadgen import encode_post

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


def server_numbers(models: Path) -> dict:
    import base64

    from facepipe import loadgen
    from tests.integration.conftest import start_server, stop_server

    _, blobs = crops()
    photos = [p.read_bytes() for p in sorted((DATA / "photos").glob("*.jpg"))]
    gpu = {"device_type": 1, "devices": "0", "precision": "fp16"}
    extra = {
        "worker_num": int(os.environ.get("WORKERS", "12")),
        "max_body_bytes": 64 * 2**20,
        "dag": {"tracer": {"interval_s": 0}, "channel_size": 4096},
        "op": {
            "decode": {"concurrency": 8, "batch_size": 64},
            "ArcFace": {
                "concurrency": 2,
                "batch_size": 512,
                "auto_batching_timeout": float(os.environ.get("ARC_WAIT_MS", "5")),
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
            single = [
                loadgen.encode_post(
                    seed_url, json.dumps({"key": ["image"], "value": [base64.b64encode(b).decode()]}).encode()
                )
                for b in blobs[:500]
            ]
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


def run(models: Path, out_dir: Path) -> None:
    import torch

    from facepipe.serving.bundle import load_bundle

    bundle = load_bundle(models / "mobilefacenet" / "1")
    res: dict = {"gpu": torch.cuda.get_device_name(0), "cores": os.cpu_count(), "torch": torch.__version__}
    if os.environ.get("ONLY") != "server":
        res["ceiling"] = ceiling(bundle)
        print("ceiling", res["ceiling"], flush=True)
        res["precision"] = precision_check(bundle)
        print("precision", res["precision"], flush=True)
    res["server"] = server_numbers(models)
    res["machine"] = f"{platform.node()}, {res['gpu']}, {res['cores']} cores"
    env = f"WORKERS={os.environ.get('WORKERS', '12')} ARC_WAIT_MS={os.environ.get('ARC_WAIT_MS', '5')}"
    res["command"] = f"{env} python bench/gpu_h100.py run"
    res["worker_num"] = int(os.environ.get("WORKERS", "12"))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gpu-h100.json").write_text(json.dumps(res, indent=2))


def report(src: Path, out: Path) -> None:
    res = json.loads(src.read_text())
    (out / "gpu-h100.json").write_text(json.dumps(res, indent=2))
    c, p, s = res["ceiling"], res["precision"], res["server"]
    kserve = max((v for k, v in s.items() if k.startswith("kserve")), key=lambda v: v["per_s"])
    single = max((v for k, v in s.items() if k.startswith("seed_single_c")), key=lambda v: v["qps"])
    photos = {
        d: max((v for k, v in s.items() if k.startswith(f"v1_embed_photos_{d}")), key=lambda v: v["qps"])
        for d in ("blazeface", "mtcnn")
    }
    half = s["seed_single_half_peak"]
    lines = [
        "# GPU: H100, server and load generator on one machine",
        "",
        f"Machine: {res['machine']}; torch {res['torch']}. Command: `{res['command']}` (after `python "
        "bench/gpu_h100.py prepare` here). ArcFace and the /v1 detector and embedder on CUDA, fp16, CUDA "
        "graphs per batch bucket, normalisation on the GPU; config in `server_numbers()`.",
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
        "Run to run: three runs of this code with 12 processes and a 5 ms ArcFace batching wait, in "
        "order (the table is the last): 19.3k / 19.6k / 20.0k faces/s on KServe binary batches; 11.1k / "
        "12.8k / 10.2k single-image req/s; 2,400 / 3,213 / 2,919 BlazeFace photos/s; p99 at half rate "
        "136 / 105 / 79 ms (p50 15-17 ms). The session before (five runs, results fetched with "
        "`.cpu()`): 19.5k-21.1k faces/s, 8.6k-11.7k req/s, 1,854-2,199 photos/s, p99 37-176 ms.",
        "",
        f"Where the time goes: the levels kept the 16 cores {100 * min(busy):.0f}-{100 * max(busy):.0f} % "
        "busy (`cpu_busy` in the JSON: server and load generator together; 74-82 % before). Each worker "
        "now waits for the GPU on a blocking CUDA event with inputs uploaded from pinned memory; `.cpu()` "
        "had spun one core per waiting thread, 75 % of the cores busy even at half the peak rate, and "
        "the freed cores went to the front ends (BlazeFace photos ~1,900 -> 2,400-3,200/s). What is left "
        "at half rate: each of the 12 processes holds its own CUDA context and the GPU time-slices "
        "between them. The ArcFace op's own time (decode and GPU call, `pipeline.profile`) was 10 ms at "
        "the median with 12 processes, 6 ms with 6 and 2.4 ms with 4, for the same small batches; but 4 "
        "processes carry only 3.5k single-image req/s (the Python front ends run out). "
        "Measured and not kept (branch `experiment/session-host`): one process owning the GPU for all 12 "
        "front ends, their calls merged while it is busy, fed over Unix sockets: one context, but the "
        "pickled hop and that process's single GIL cost more (KServe 12-13.5k faces/s, single-image "
        "6.2-10.7k req/s, half-rate p99 48-127 ms); a 0.2-0.5 ms GIL switch interval changed nothing "
        "measurable. MTCNN stays at ~250 photos/s: its P-Net runs per image and pyramid scale. Not met: "
        "p99 <= 20 ms at half the peak rate in any run; 20k faces/s in none of the three (19,986 at best).",
    ]
    (out / "gpu-h100.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["prepare", "run", "report"])
    ap.add_argument("file", nargs="?", type=Path)
    ap.add_argument("--lfw", type=Path, default=ROOT.parent / "shared/data/lfw-dev")
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ROOT / "bench/results")))
    args = ap.parse_args()
    if args.what == "prepare":
        prepare(args.lfw)
    elif args.what == "run":
        run(args.models, args.out)
    else:
        report(args.file or ROOT / "bench/results/gpu-h100.json", ROOT / "bench/results")


if __name__ == "__main__":
    main()
