"""The seed ArcFace endpoint at concurrency 16 under config.yml's ArcFace op as shipped, at
``precision: fp32`` (what shipped before) and ``auto`` (the default now), rounds interleaved so both
see the same contention, each with the bare ceiling of its precision (the server's layout: workers x
threads sessions side by side, its batch size) measured in the same round. Used by
bench/cpu_runtimes.py (``--serve-seconds``)."""

from __future__ import annotations

import base64
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.bare import rate, runner  # noqa: E402
from facepipe.models.bundle import Bundle  # noqa: E402
from facepipe.tools.loadgen import closed_loop, encode_post, seed_ok  # noqa: E402
from tests.integration.conftest import start_server, stop_server  # noqa: E402


def shipped_op(precision: str) -> dict[str, Any]:
    op = yaml.safe_load((ROOT / "config.yml").read_text())["op"]["ArcFace"]
    return op | {"local_service_conf": op["local_service_conf"] | {"precision": precision}}


def seed_bodies(images: list[Path]) -> list[bytes]:
    return [
        json.dumps(
            {"key": ["image"], "value": [base64.b64encode(f.read_bytes()).decode()], "logid": i}
        ).encode()
        for i, f in enumerate(images)
    ]


def serve(models: Path, bodies: list[bytes], precision: str, seconds: float, concurrency: int) -> dict:
    op = shipped_op(precision)
    with tempfile.TemporaryDirectory() as tmp:
        run = start_server(models, Path(tmp), {"dag": {"tracer": {"interval_s": 0}}, "op": {"ArcFace": op}})
        try:
            meta = httpx.get(run.url + "/v2/models/ArcFace", timeout=10).json()
            url = run.url + "/ArcFace/prediction"
            reqs = [encode_post(url, b) for b in bodies]
            closed_loop(url, reqs, 4, 2.0, ok=seed_ok)  # warm-up
            level = asdict(closed_loop(url, reqs, concurrency, seconds, ok=seed_ok))
        finally:
            stop_server(run)
    return {"op": op, "parameters": meta.get("parameters", {}), "level": level}


def ceiling(bundle: Bundle, x: np.ndarray, precision: str, op: dict[str, Any], seconds: float) -> float:
    """Images/s of the op's layout (concurrency sessions x thread_num threads) at its batch size."""
    threads = op["local_service_conf"]["thread_num"]
    runs = [runner(bundle, threads, "auto", precision) for _ in range(op["concurrency"])]
    return rate(runs, x[: op["batch_size"]], seconds)


def rounds(
    models: Path, bundle: Bundle, images: list[Path], x: np.ndarray, runs: int, seconds: float, c: int = 16
) -> dict[str, list[dict]]:
    bodies = seed_bodies(images)
    out: dict[str, list[dict]] = {"fp32": [], "auto": []}
    for r in range(runs):
        for precision, rows in out.items():
            row = serve(models, bodies, precision, seconds, c)
            row["ceiling_img_s"] = ceiling(bundle, x, precision, row["op"], 3.0)
            rows.append(row)
            print(
                f"serve round {r + 1} {precision}", json.dumps({k: row[k] for k in ("parameters", "level")})
            )
    return out


def lines(serving: dict[str, list[dict]], concurrency: int = 16) -> list[str]:
    """The serving section of cpu-runtimes.md."""
    fp32, auto = serving["fp32"], serving["auto"]
    chosen = auto[0]["parameters"]
    qps = {k: [r["level"]["qps"] for r in v] for k, v in serving.items()}
    ratios = [a / f for a, f in zip(qps["auto"], qps["fp32"], strict=True)]
    out = [
        "",
        f"## Serving: the seed ArcFace endpoint at concurrency {concurrency}, fp32 (shipped before) vs auto "
        "(the default now)",
        "",
        f"config.yml's ArcFace op ({json.dumps(shipped_op('auto'))}), 700 real LFW images, closed loop, the "
        f"load generator on the same 2 cores; {len(fp32)} rounds, fp32 and auto alternating. `auto` chose: "
        f"{chosen.get('precision')} ({chosen.get('precision_reason')}, golden cosine "
        f"{chosen.get('precision_golden_cosine', '-')}). Ceiling: the bare model in the op's layout and "
        "batch size, same round.",
        "",
        "| round | fp32 QPS | fp32 ceiling img/s | fp32 p99 ms | auto QPS | auto ceiling img/s | "
        "auto p99 ms | auto / fp32 QPS | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for i, (f, a) in enumerate(zip(fp32, auto, strict=True)):
        errors = sum(f["level"]["errors"].values()) + sum(a["level"]["errors"].values())
        out.append(
            f"| {i + 1} | {f['level']['qps']:.1f} | {f['ceiling_img_s']:.1f} | {f['level']['p99_ms']:.1f} | "
            f"{a['level']['qps']:.1f} | {a['ceiling_img_s']:.1f} | {a['level']['p99_ms']:.1f} | "
            f"{ratios[i]:.2f}x | {errors} |"
        )
    out += [
        "",
        f"auto / fp32 at c={concurrency}: mean {np.mean(ratios):.2f}x, "
        f"range {min(ratios):.2f}-{max(ratios):.2f}x "
        f"over {len(ratios)} rounds (fp32 {min(qps['fp32']):.0f}-{max(qps['fp32']):.0f} QPS, auto "
        f"{min(qps['auto']):.0f}-{max(qps['auto']):.0f} QPS).",
    ]
    return out


def main() -> None:
    """More rounds than cpu_runtimes.py's: writes bench/results/cpu-serving.{json,md}."""
    import argparse
    import os
    import platform

    from bench.arcface_cpu import crops
    from facepipe.models.bundle import load_bundle

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/lfw-dev")
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    args = ap.parse_args()
    images = sorted((args.data / "images").rglob("*.jpg"))[:700]
    bundle = load_bundle(args.models / "mobilefacenet" / "1")
    serving = rounds(args.models, bundle, images, crops(images), args.runs, args.seconds)
    machine = f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores"
    command = "python bench/serve_precision.py " + " ".join(sys.argv[1:])
    out = ROOT / "bench/results"
    (out / "cpu-serving.json").write_text(
        json.dumps({"machine": machine, "command": command, "serving": serving}, indent=2)
    )
    head = ["# fp32 vs precision: auto, serving", "", f"Machine: {machine}. Command: `{command}`."]
    text = "\n".join(head + lines(serving)[1:]) + "\n"
    (out / "cpu-serving.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
