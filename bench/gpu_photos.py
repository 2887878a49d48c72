"""The photo pipeline on the GPU (issue 25 part 4): decode (nvJPEG), BlazeFace/MTCNN, the alignment
warp and the embedder on one GPU, 250x250 photos through ``/v1/embed``; aligned crops through KServe;
single-image seed requests and their tail at half the peak rate, three times. Each stage's ceiling is
measured in the same run (bench/gpu_stages.py, in a spawned child before the server starts).
Writes the run's JSON; ``report`` makes bench/results/gpu-photos.{json,md} from one or more runs.

    python bench/gpu_h100.py prepare                  # here: crops + 500 photos into .gpu/
    python bench/gpu_photos.py run [--cpu-path] [--tuned]  # on the GPU machine (MPS on, 12 processes)
    TESTS=0 STAGES=0 ...                             # the server parts alone
    python bench/gpu_photos.py report RUN [RUN ...]   # here
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import threading
import time
import traceback
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
from bench.gpu_h100 import DATA, cpu_jiffies, crops, in_child, kserve_binary, mps, server_config  # noqa: E402
from bench.gpu_layouts import profiled  # noqa: E402

WORKERS, ARC_WAIT_MS = 12, 2.0
# the tuned photo layout (`run --tuned`): 2 workers per GPU photo op (not 8/4/4 each issuing its own
# call of 1-3 photos), batches of up to 64 and a 2 ms batching wait, so that each GPU call carries more
TUNED = {
    "decode": {"concurrency": 2, "batch_size": 64, "auto_batching_timeout": 2},
    "detect": {"concurrency": 2, "batch_size": 64, "auto_batching_timeout": 2},
    "align": {"concurrency": 2, "batch_size": 64, "auto_batching_timeout": 2},
}
SMOKE = os.environ.get("SMOKE") == "1"  # here, without a GPU: every code path of the script, briefly
# seconds of each level and warm-up, scaled (LEVEL_SCALE: a shorter run where device time is short)
T = 0.15 if SMOKE else float(os.environ.get("LEVEL_SCALE", "1.0"))
C = 1 / 16 if SMOKE else 1.0  # concurrency of each level, scaled


def c_(n: int) -> int:
    return max(2, int(n * C))


def photo_config(gpu_path: bool, tuned: bool = False) -> dict:
    """bench/gpu_h100.py's server (every model op on CUDA, fp16, 12 processes), with decode and align
    on the GPU too when ``gpu_path`` (op.decode / op.align ``device_type: 1``); ``tuned``: TUNED's
    workers, batches and waits on top."""
    cfg = server_config(1 if SMOKE else WORKERS, ARC_WAIT_MS)
    if SMOKE:
        for op in cfg["op"].values():
            op.pop("local_service_conf", None)
    elif gpu_path:
        gpu = {"device_type": 1, "devices": "0"}
        cfg["op"]["decode"] |= {"local_service_conf": gpu, "auto_batching_timeout": 1}
        cfg["op"]["align"] |= {"local_service_conf": gpu, "batch_size": 64}
    if tuned:
        for op, settings in TUNED.items():
            cfg["op"][op] |= settings
    return cfg


def stage_profile(url: str) -> dict[str, dict[str, float]]:
    """Per pipeline stage, summed over the worker processes that answered 48 scrapes of /metrics
    (each answer is one process's totals): items, batches, compute and queue-wait seconds."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    seen: dict[tuple, dict[str, dict[str, float]]] = {}
    for _ in range(48):
        with httpx.Client() as client:  # a new connection: the kernel picks a worker
            text = client.get(url + "/metrics").text
        per: dict[str, dict[str, float]] = defaultdict(dict)
        for fam in text_string_to_metric_families(text):
            if fam.name.startswith("facepipe_stage_") and fam.type == "counter":
                for s in fam.samples:
                    if s.name.endswith("_total"):
                        key = f"{s.labels['pipeline']}/{s.labels['stage']}"
                        per[key][fam.name.removeprefix("facepipe_stage_")] = s.value
        seen[tuple(sorted((k, v.get("items", 0)) for k, v in per.items()))] = per
    total: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for per in seen.values():
        for stage, vals in per.items():
            for k, v in vals.items():
                total[stage][k] += v
    out = {}
    for stage, v in total.items():
        if v.get("items"):
            out[stage] = {
                "items": v["items"],
                "mean_batch": v["items"] / max(v.get("batches", 0), 1),
                "compute_ms_per_item": 1e3 * v.get("compute_seconds", 0) / v["items"],
                "wait_ms_per_item": 1e3 * v.get("queue_wait_seconds", 0) / v["items"],
            }
    return {"processes_seen": len(seen), **out}  # type: ignore[dict-item]


# The device image has no OpenVINO, which `facepipe serve`'s install check asks for; nothing here uses
# it (every model op is on CUDA; the CPU liveness net falls back to onnxruntime), so the bench starts
# the same CLI with that check skipped there.
CLI_WITHOUT_CHECK = (
    "import sys, facepipe.cli.server as s; s.need_server = lambda command: None; "
    "from facepipe.cli import main; sys.argv[0] = 'facepipe'; main()"
)


def start(models: Path, tmp: Path, cfg: dict) -> Any:
    import importlib.util

    import yaml

    from tests.integration.conftest import free_port, launch, start_server

    if importlib.util.find_spec("openvino") is not None:
        return start_server(models, tmp, cfg, ready_s=400)
    cfg = {"http_port": free_port(), "rpc_port": free_port(), "log_dir": str(tmp / "logs"), **cfg}
    (tmp / "config.yml").write_text(yaml.safe_dump(cfg))
    args = ["-c", CLI_WITHOUT_CHECK, "serve", "--config", str(tmp / "config.yml"), "--models", str(models)]
    return launch(args, tmp, cfg, ready_s=400, script=True)


def server_numbers(models: Path, gpu_path: bool, photos_only: bool = False, tuned: bool = False) -> dict:
    from facepipe.tools import loadgen
    from tests.integration.conftest import stop_server

    _, blobs = crops()
    photos = [p.read_bytes() for p in sorted((DATA / "photos").glob("*.jpg"))]
    out: dict[str, Any] = {}

    def level(key: str, fn: Any, *args: Any, per_request: int = 1) -> Any:
        busy0, total0 = cpu_jiffies()
        lv = fn(*args)
        busy1, total1 = cpu_jiffies()
        busy = (busy1 - busy0) / max(total1 - total0, 1)
        out[key] = {**dataclasses.asdict(lv), "per_s": lv.qps * per_request, "cpu_busy": busy}
        print(
            key,
            f"{lv.qps * per_request:,.0f}/s p50 {lv.p50_ms:.1f} p99 {lv.p99_ms:.1f}",
            f"cpu {busy:.2f}",
            lv.errors,
            flush=True,
        )
        return lv

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run = start(models, Path(tmp), photo_config(gpu_path, tuned))
        out["ready_s"] = time.perf_counter() - t0
        try:
            for detector, levels in (("blazeface", (256, 384)), ("mtcnn", (64, 128))):
                v1 = run.url + f"/v1/embed?max_faces=1&detector={detector}"
                preqs = [loadgen.encode_post(v1, p, "image/jpeg") for p in photos]
                loadgen.closed_loop(v1, preqs, c_(levels[0]), 4 * T, 6)  # warm-up
                for c in levels:
                    level(f"v1_embed_photos_{detector}_c{c}", loadgen.closed_loop, v1, preqs, c_(c), 8 * T, 6)
            out["profile_photos"] = stage_profile(run.url)
            if photos_only:
                return out
            url = run.url + "/v2/models/ArcFace/infer"
            reqs = [kserve_binary(url, blobs[i : i + 64]) for i in range(0, 64 * 40, 64)]
            loadgen.closed_loop(url, reqs, c_(32), 4 * T, 4)
            for c in (32, 64):
                level(
                    f"kserve_binary64_c{c}", loadgen.closed_loop, url, reqs, c_(c), 8 * T, 4, per_request=64
                )
            single_tail(run.url, blobs, level, out)
            out["profile_all"] = stage_profile(run.url)
        finally:
            stop_server(run)
            log = Path(tmp) / "server.log"
            out["server_log_tail"] = log.read_text()[-3000:] if log.exists() else ""
    return out


def single_tail(base: str, blobs: list[bytes], level: Any, out: dict) -> None:
    """Peak single-image rate, then three open-loop runs at half of it, each with 150 profiled requests
    sampled meanwhile (ArcFace op queue wait and run time: where the tail comes from)."""
    from bench.gpu_h100 import seed_body
    from facepipe.tools import loadgen

    url = base + "/ArcFace/prediction"
    single = [loadgen.encode_post(url, seed_body(b)) for b in blobs[:500]]
    loadgen.closed_loop(url, single, c_(256), 3 * T, 6, loadgen.seed_ok)
    peak = max(
        (
            level(f"seed_single_c{c}", loadgen.closed_loop, url, single, c_(c), 6 * T, 6, loadgen.seed_ok)
            for c in (256, 512)
        ),
        key=lambda lv: lv.qps,
    )
    for k in range(3):
        samples: list[tuple[float, float, float]] = []
        sampler = threading.Thread(target=profiled, args=(url, blobs[500 + 150 * k : 650 + 150 * k], samples))
        timer = threading.Timer(3.0 * T, sampler.start)
        timer.start()
        level(
            f"seed_half_run{k + 1}",
            loadgen.open_loop,
            url,
            single,
            peak.qps / 2,
            8 * T,
            8,
            loadgen.seed_ok,
            2 * T,
        )
        timer.join()
        sampler.join()
        pct = np.percentile(np.array(samples), [50, 99], axis=0)
        for i, name in enumerate(("sampled_total", "arcface_queue", "arcface_run")):
            out[f"seed_half_run{k + 1}"][f"{name}_p50_ms"] = float(pct[0, i])
            out[f"seed_half_run{k + 1}"][f"{name}_p99_ms"] = float(pct[1, i])


def gpu_tests() -> dict:
    """The device-path tests (CPU and CUDA parameters) and the torch runtime's CUDA tests, here."""
    import subprocess

    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-s",
        "-p",
        "no:cacheprovider",
        "tests/face/test_device.py",
        "tests/face/test_device_ops.py",
        "tests/runtime/test_torch.py",
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    print(done.stdout[-4000:], done.stderr[-2000:], flush=True)
    return {"command": " ".join(cmd[1:]), "rc": done.returncode, "tail": done.stdout[-6000:]}


def model_info() -> dict:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU (smoke run)"
    return {"gpu": gpu, "torch": torch.__version__}


def stage_numbers(models: Path) -> dict:
    from bench.gpu_stages import stages

    return stages(models)


def run(models: Path, out_dir: Path, cpu_path: bool, tuned: bool = False) -> None:
    """Every part in order; the JSON is rewritten after each, so a run stopped at its time limit
    still leaves what it measured."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"gpu-photos-run-{time.strftime('%H%M%S')}.json"
    res: dict[str, Any] = model_info() if SMOKE else in_child(model_info)
    res["cores"] = os.cpu_count()
    res["machine"] = f"{platform.node()}, {res['gpu']}, {res['cores']} cores"
    res["command"] = "python bench/gpu_photos.py run" + " --cpu-path" * cpu_path + " --tuned" * tuned
    res["level_scale"] = T
    res["photo_config"] = {k: photo_config(True)["op"][k] for k in ("decode", "detect", "align", "embed")}
    if tuned:
        res["photo_config_tuned"] = {k: photo_config(True, True)["op"][k] for k in TUNED}
    try:
        import torchvision

        res["torchvision"] = torchvision.__version__
    except ImportError:
        res["torchvision"] = None
    parts: list[tuple[str, Any]] = []
    if os.environ.get("TESTS", "1") == "1":
        parts.append(("tests", gpu_tests))
    if os.environ.get("STAGES", "1") == "1":  # in a child: no CUDA context here
        parts.append(("stages", lambda: in_child(stage_numbers, models)))
    if tuned:
        parts.append(("server_gpu_tuned", lambda: server_numbers(models, True, tuned=True)))
    parts.append(("server_gpu_path", lambda: server_numbers(models, True)))
    if cpu_path:
        parts.append(("server_cpu_path", lambda: server_numbers(models, False, photos_only=True)))
    for key, fn in parts:
        try:
            if key.startswith("server"):
                with mps(not SMOKE) as up:
                    if not up and not SMOKE:
                        raise RuntimeError("CUDA MPS did not come up")
                    res[key] = fn()
            else:
                res[key] = fn()
        except Exception:  # a part that breaks is recorded, and the next one still runs
            res[key] = {"error": traceback.format_exc()[-3000:]}
            print(res[key]["error"], flush=True)
        path.write_text(json.dumps(res, indent=2))
    print("wrote", path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["run", "report"])
    ap.add_argument("runs", nargs="*", type=Path)
    ap.add_argument("--cpu-path", action="store_true", help="also the server with decode and align on CPU")
    ap.add_argument("--tuned", action="store_true", help="also the server with the TUNED photo layout")
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ROOT / "bench/results")))
    args = ap.parse_args()
    if args.what == "run":
        run(args.models, args.out, args.cpu_path, args.tuned)
    else:
        from bench.gpu_photos_report import report

        report(args.runs, ROOT / "bench/results")


if __name__ == "__main__":
    main()
