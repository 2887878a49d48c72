"""Online model swaps under load, and an A/B split. Writes bench/results/reload.{json,md}.

    .venv/bin/python bench/reload.py [--rate 60] [--seconds 30]

A server on a private copy of the model repository takes seed ArcFace requests arriving at --rate per
second (Poisson) for --seconds. Meanwhile mobilefacenet version 2 is added and loaded, then a broken
version 3 (golden outputs negated: its self-test must fail), then version 4. Every response's variant
(x-facepipe-variant) is recorded. Then weights 90/10 split 2,000 requests between versions 2 and 4.
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
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.integration.conftest import add_version, private_repository, start_server, stop_server  # noqa: E402

KEY = "bench-admin-key-0123456789"
ADMIN = {"x-api-key": KEY}


async def load_run(url: str, body: dict, rate: float, seconds: float, swaps: list) -> list[tuple]:
    """(sent at, latency s, err_no or http status, variant) per request."""
    rng = np.random.default_rng(0)
    records: list[tuple] = []
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=64)) as c:

        async def one(due: float) -> None:
            try:
                r = await c.post("/ArcFace/prediction", json=body)
                code = r.json()["err_no"] if r.status_code == 200 else r.status_code
                records.append(
                    (due, time.perf_counter() - due, code, r.headers.get("x-facepipe-variant", ""))
                )
            except httpx.HTTPError as exc:
                records.append((due, time.perf_counter() - due, type(exc).__name__, ""))

        start = due = time.perf_counter()
        tasks, pending = [], list(swaps)
        while due < start + seconds:
            due += float(rng.exponential(1 / rate))
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(one(due)))
            if pending and due - start >= pending[0][0]:
                tasks.append(asyncio.create_task(pending.pop(0)[1](c)))
        await asyncio.gather(*tasks)
    return records


def swap(repo: Path, version: int, broken: bool, log: list) -> tuple:
    async def act(c: httpx.AsyncClient) -> None:
        await asyncio.to_thread(add_version, repo, version, broken)
        t0 = time.perf_counter()
        r = await c.post("/v2/repository/models/mobilefacenet/load", headers=ADMIN, timeout=120)
        log.append(
            {
                "version": version,
                "broken": broken,
                "at": t0,
                "took_s": time.perf_counter() - t0,
                "status": r.status_code,
                "answer": r.json(),
            }
        )

    return act


def ab_split(url: str, body: dict, n: int) -> dict:
    httpx.post(
        url + "/v2/repository/models/ArcFace/weights", json={"weights": {"2": 90, "4": 10}}, headers=ADMIN
    )

    async def run() -> Counter:
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            sem = asyncio.Semaphore(8)

            async def one() -> str:
                async with sem:
                    r = await c.post("/ArcFace/prediction", json=body)
                return r.headers.get("x-facepipe-variant", "")

            return Counter(await asyncio.gather(*(one() for _ in range(n))))

    counts = asyncio.run(run())
    return {
        "requests": n,
        "weights": {"2": 90, "4": 10},
        "counts": dict(counts),
        "share_v4": counts["ArcFace/4"] / n,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=60)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    ap.add_argument("--lfw", type=Path, default=ROOT.parent / "shared/data/lfw-dev")
    args = ap.parse_args()
    img = base64.b64encode(sorted((args.lfw / "images").glob("*/*.jpg"))[0].read_bytes()).decode()
    body = {"key": ["image"], "value": [img]}
    with tempfile.TemporaryDirectory() as tmp:
        repo = private_repository(args.models, Path(tmp) / "models")
        extra = {"auth": {"api_keys": [KEY]}, "models": {"mobilefacenet": {"version_policy": {"latest": 2}}}}
        run = start_server(repo, Path(tmp), extra)
        swaps_log: list = []
        plan = [
            (8, swap(repo, 2, False, swaps_log)),
            (15, swap(repo, 3, True, swaps_log)),
            (22, swap(repo, 4, False, swaps_log)),
        ]
        try:
            records = asyncio.run(load_run(run.url, body, args.rate, args.seconds, plan))
            split = ab_split(run.url, body, 2000)
        finally:
            stop_server(run)
    t0 = min(r[0] for r in records)
    lat = np.array([r[1] for r in records]) * 1000
    near = np.array(
        [any(s["at"] - 0.5 <= r[0] <= s["at"] + s["took_s"] + 1.0 for s in swaps_log) for r in records]
    )
    res = {
        "rate": args.rate,
        "seconds": args.seconds,
        "requests": len(records),
        "failed": sum(1 for r in records if r[2] != 0),
        "variants": dict(Counter(r[3] for r in records)),
        "p99_ms_steady": float(np.percentile(lat[~near], 99)),
        "p50_ms_steady": float(np.percentile(lat[~near], 50)),
        "p99_ms_during_swaps": float(np.percentile(lat[near], 99)) if near.any() else None,
        "requests_during_swaps": int(near.sum()),
        "swaps": [{k: v for k, v in s.items() if k != "at"} | {"at_s": s["at"] - t0} for s in swaps_log],
        "ab": split,
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
        "command": "python bench/reload.py " + " ".join(sys.argv[1:]),
    }
    out = ROOT / "bench/results"
    (out / "reload.json").write_text(json.dumps(res, indent=2))
    lines = [
        "# Online model swaps under load, and an A/B split",
        "",
        f"Machine: {res['machine']}. Command: `{res['command']}`. Seed `ArcFace` requests arriving at "
        f"{args.rate:.0f}/s (Poisson) for {args.seconds:.0f} s; version policy `latest: 2`.",
        "",
        "| event | at (s) | load call took (s) | answer |",
        "| --- | --- | --- | --- |",
    ]
    for s in res["swaps"]:
        what = f"version {s['version']}" + (" (broken golden outputs)" if s["broken"] else "")
        lines.append(
            f"| {what} | {s['at_s']:.1f} | {s['took_s']:.2f} | "
            f"HTTP {s['status']}: `{json.dumps(s['answer'])[:120]}` |"
        )
    lines += [
        "",
        f"Requests: {res['requests']}, failed: **{res['failed']}**. Answered by: "
        + ", ".join(f"{k} {v}" for k, v in sorted(res["variants"].items()))
        + ".",
        f"p99 latency: {res['p99_ms_steady']:.1f} ms in steady state, "
        f"{res['p99_ms_during_swaps']:.1f} ms within 0.5 s before to 1 s after each load call "
        f"({res['requests_during_swaps']} requests); target ≤ 2x.",
        f"A/B: weights 2:90 / 4:10 over {split['requests']} requests gave version 4 "
        f"{100 * split['share_v4']:.1f} % (target 10 ± 3).",
    ]
    (out / "reload.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
