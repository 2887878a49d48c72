"""Full face pipeline on CPU through POST /v1/embed (decode, detect, align, embed): 250x250 LFW images
and the 25 real photos with MTCNN, and the LFW images with BlazeFace, closed loop at several
concurrencies, with the per-op breakdown read from the server's own stage metrics. Writes
bench/results/cpu-face.{json,md}.

    .venv/bin/python bench/face_cpu.py [--seconds 6] [--levels 1,8,16]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.stages import stage_counters  # noqa: E402
from facepipe.tools.loadgen import closed_loop, encode_post  # noqa: E402
from tests.integration.conftest import start_server, stop_server  # noqa: E402


def stage_totals(url: str, detector: str) -> dict[str, dict[str, float]]:
    return {stage: v for (p, stage), v in stage_counters(url).items() if p == f"photos-{detector}"}


def per_op_ms(before: dict, after: dict) -> dict[str, float]:
    res = {}
    for stage, a in after.items():
        b = before.get(stage, {})
        items = a.get("items", 0) - b.get("items", 0)
        secs = a.get("compute_seconds", 0) - b.get("compute_seconds", 0)
        if items:
            res[stage] = 1e3 * secs / items
    return res


def run_set(url: str, files: list[Path], levels: list[int], seconds: float, detector: str) -> list[dict]:
    route = f"{url}/v1/embed?detector={detector}"
    reqs = [encode_post(route, f.read_bytes(), "image/jpeg") for f in files]
    closed_loop(route, reqs, 2, 2.0)  # warm-up
    rows = []
    for c in levels:
        before = stage_totals(url, detector)
        level = asdict(closed_loop(route, reqs, c, seconds))
        rows.append(level | {"per_op_ms_per_image": per_op_ms(before, stage_totals(url, detector))})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--levels", default="1,8,16")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data")
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    args = ap.parse_args()
    levels = [int(c) for c in args.levels.split(",")]
    lfw = sorted((args.data / "lfw-dev/images").rglob("*.jpg"))[:700]
    sets = {
        "MTCNN, lfw 250x250": (lfw, "mtcnn"),
        "MTCNN, photos (25 real photos, up to 2 Mpx)": (
            sorted((args.data / "photos").glob("*.jpg")),
            "mtcnn",
        ),
        "BlazeFace, lfw 250x250 (target ≥ 100 images/s)": (lfw, "blazeface"),
    }
    with tempfile.TemporaryDirectory() as tmp:
        run = start_server(args.models, Path(tmp), {"op": {}, "dag": {"tracer": {"interval_s": 0}}})
        try:
            result = {name: run_set(run.url, f, levels, args.seconds, d) for name, (f, d) in sets.items()}
        finally:
            stop_server(run)
    machine = f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores"
    command = "python bench/face_cpu.py " + " ".join(sys.argv[1:])
    out = ROOT / "bench/results"
    (out / "cpu-face.json").write_text(
        json.dumps({"machine": machine, "command": command, **result}, indent=2)
    )
    lines = [
        "# Full face pipeline on CPU (/v1/embed: decode, detect, align, embed)",
        "",
        f"Machine: {machine}; server (default config) and load generator on the same cores. "
        f"Command: `{command}`; closed loop, {args.seconds:.0f} s per level, one image per request. "
        "Per-op columns: compute ms per image from the server's stage metrics (a worker's wall time; "
        "2 detect workers run side by side).",
        "",
    ]
    for name, rows in result.items():
        ops = list(rows[0]["per_op_ms_per_image"])
        lines += [
            f"## {name}",
            "",
            "| concurrency | images/s | p50 ms | p99 ms | errors | "
            + " | ".join(f"{o} ms" for o in ops)
            + " |",
            "| --- " * (5 + len(ops)) + "|",
        ]
        for r in rows:
            per = " | ".join(f"{r['per_op_ms_per_image'].get(o, 0):.2f}" for o in ops)
            lines.append(
                f"| {r['concurrency']} | {r['qps']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                f"{sum(r['errors'].values())} | {per} |"
            )
        lines.append("")
    (out / "cpu-face.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
