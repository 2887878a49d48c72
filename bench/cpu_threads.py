"""What a worker's threads cost in CPU time, not wall time: the CPU-ms per image of ArcFace batches of 4,
run back to back and with an idle gap after each (a worker whose queue ran dry), at 1 and 2 threads.
A 2-thread run is faster in wall time but spends more CPU per image than a 1-thread run (the pool's
threads busy-wait for a while after each task: oneTBB's worker_wait): when two 2-thread workers are
busy on 2 cores, that is CPU the other worker needs. Why the shipped 2 x 2 layout
tops out below the 2 x 1 ceiling. Writes bench/results/cpu-threads.{json,md}.

    .venv/bin/python bench/cpu_threads.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.arcface_cpu import crops  # noqa: E402
from bench.bare import Run, runner  # noqa: E402
from facepipe.models.bundle import load_bundle  # noqa: E402
from facepipe.runtime import cpu_engine  # noqa: E402

GAPS_MS = (0, 1, 2, 5)


def cpu_per_image(run: Run, x: np.ndarray, gap_s: float, seconds: float) -> float:
    """Process CPU-ms per image over ``seconds`` of runs, sleeping ``gap_s`` after each."""
    c0, stop, n = time.process_time(), time.perf_counter() + seconds, 0
    while time.perf_counter() < stop:
        run(x)
        n += len(x)
        if gap_s:
            time.sleep(gap_s)
    return (time.process_time() - c0) * 1e3 / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    model = load_bundle(ROOT / "models/mobilefacenet/1")
    engine = cpu_engine(model, "auto")
    x = crops(sorted((ROOT.parent / "shared/data/lfw-dev/images").rglob("*.jpg")), n=4)
    rows = {}
    for threads in (1, 2):
        run = runner(model, threads, engine)
        for _ in range(20):
            run(x)
        rows[threads] = {
            f"gap_{g}ms": round(cpu_per_image(run, x, g / 1e3, args.seconds), 3) for g in GAPS_MS
        }
    machine = f"{platform.node() or 'vm'} {platform.machine()}, {os.cpu_count()} cores"
    result = {"machine": machine, "command": "python bench/cpu_threads.py", "engine": engine, "batch": 4}
    result["cpu_ms_per_image"] = {str(k): v for k, v in rows.items()}
    out = ROOT / "bench/results"
    (out / "cpu-threads.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# CPU time per image by worker threads",
        "",
        f"Machine: {machine}. Command: `python bench/cpu_threads.py`. {engine}, ArcFace batches of 4 real",
        "LFW crops, one worker in-process; CPU-ms per image from the process's CPU clock, runs back to back",
        "(gap 0) or each followed by an idle gap (a worker whose queue ran dry).",
        "",
        "| threads | " + " | ".join(f"gap {g} ms" for g in GAPS_MS) + " |",
        "| --- |" + " --- |" * len(GAPS_MS),
    ]
    lines += [f"| {t} | " + " | ".join(f"{v:.2f}" for v in r.values()) + " |" for t, r in rows.items()]
    (out / "cpu-threads.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
