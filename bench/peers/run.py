"""The side-by-side race on this machine: facepipe against a plain FastAPI + onnxruntime service,
LitServe and Ray Serve, with the same MobileFaceNet ONNX, the same 700 real LFW images and the same
load generator (facepipe.tools.loadgen). Writes bench/results/peers-cpu.{json,md,png}.

    python -m venv /tmp/peers-venv && /tmp/peers-venv/bin/pip install -r bench/peers/requirements.txt
    .venv/bin/python bench/peers/run.py --peers-python /tmp/peers-venv/bin/python

Each peer is tuned on its own knobs first (a short run at concurrency 16 per setting; the best is kept),
then swept: closed loop at concurrency 1..32, and open loop at fixed rates for p99 at equal load.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from facepipe.tools import plots  # noqa: E402
from facepipe.tools.loadgen import closed_loop, encode_post, open_loop, seed_ok  # noqa: E402
from tests.integration.conftest import free_port, start_server, stop_server  # noqa: E402

HERE = Path(__file__).resolve().parent
PEERS = {
    "fastapi-ort": ("fastapi_ort.py", [{"PEER_THREADS": "1"}, {"PEER_THREADS": "2"}]),
    "litserve": (
        "litserve_srv.py",
        [{"PEER_WORKERS": "1", "PEER_BATCH": "8"}, {"PEER_WORKERS": "2", "PEER_BATCH": "8"}],
    ),
    "ray-serve": (
        "ray_srv.py",
        [{"PEER_WORKERS": "1", "PEER_BATCH": "8"}, {"PEER_WORKERS": "2", "PEER_BATCH": "8"}],
    ),
}
LEVELS, RATES = (1, 4, 8, 16, 32), (40, 80, 120)
# facepipe as shipped (OpenVINO), and on onnxruntime like the peers, so the runtime's share is visible
FACEPIPE = {"facepipe": "auto", "facepipe-ort": "onnxruntime"}


def measure(url: str, bodies: list[bytes], seconds: float) -> dict:
    reqs = [encode_post(url, b) for b in bodies]
    closed_loop(url, reqs, 4, 2.0, ok=seed_ok)  # warm-up
    closed = [asdict(closed_loop(url, reqs, c, seconds, ok=seed_ok)) for c in LEVELS]
    rated = [asdict(open_loop(url, reqs, r, seconds, ok=seed_ok)) for r in RATES]
    return {"closed": closed, "open": rated}


def start_peer(python: str, script: str, env: dict, body: bytes) -> tuple[subprocess.Popen, str]:
    port = free_port()
    full = {
        **os.environ,
        **env,
        "PEER_PORT": str(port),
        "PEER_MODEL": str(ROOT / "models/mobilefacenet/1/model.onnx"),
    }
    log = open(tempfile.mktemp(suffix=".log"), "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [python, script], cwd=HERE, env=full, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}/predict"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{script} exited: {Path(log.name).read_text()[-1500:]}")
        try:
            if (
                httpx.post(
                    url, content=body, headers={"content-type": "application/json"}, timeout=5
                ).status_code
                == 200
            ):
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"{script} did not answer in 120 s")


def stop(proc: subprocess.Popen) -> None:
    """The peer and every process it started (LitServe workers, Ray's raylet and replicas)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1)


def peer(python: str, name: str, bodies: list[bytes], seconds: float) -> dict:
    script, settings = PEERS[name]
    best, best_qps = settings[0], -1.0
    if len(settings) > 1:
        for env in settings:
            proc, url = start_peer(python, script, env, bodies[0])
            try:
                reqs = [encode_post(url, b) for b in bodies]
                closed_loop(url, reqs, 4, 2.0, ok=seed_ok)
                qps = closed_loop(url, reqs, 16, seconds, ok=seed_ok).qps
            finally:
                stop(proc)
            print(name, env, f"{qps:.1f} req/s at c=16", flush=True)
            if qps > best_qps:
                best, best_qps = env, qps
    proc, url = start_peer(python, script, best, bodies[0])
    try:
        return {"settings": best, "tried": settings} | measure(url, bodies, seconds)
    finally:
        stop(proc)


def versions(python: str) -> dict:
    names = ["fastapi", "litserve", "ray", "uvicorn", "onnxruntime"]
    code = f"import importlib.metadata as m, json; print(json.dumps({{p: m.version(p) for p in {names}}}))"
    return json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers-python", default="/tmp/peers-venv/bin/python")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/lfw-dev")
    ap.add_argument(
        "--facepipe-only", action="store_true", help="re-measure facepipe, keep the peers' results"
    )
    args = ap.parse_args()
    files = sorted((args.data / "images").rglob("*.jpg"))[:700]
    bodies = [
        json.dumps({"key": ["image"], "value": [base64.b64encode(f.read_bytes()).decode()]}).encode()
        for f in files
    ]
    out = ROOT / "bench/results"
    previous = json.loads((out / "peers-cpu.json").read_text()) if args.facepipe_only else {}
    res: dict = {"versions": versions(args.peers_python)}
    shipped = yaml.safe_load((ROOT / "config.yml").read_text())["op"]["ArcFace"]
    for name, engine in FACEPIPE.items():
        op = {"ArcFace": shipped | {"local_service_conf": shipped["local_service_conf"] | {"engine": engine}}}
        with tempfile.TemporaryDirectory() as tmp:
            run = start_server(ROOT / "models", Path(tmp), {"dag": {"tracer": {"interval_s": 0}}, "op": op})
            try:
                res[name] = {"settings": f"default config.yml, engine {engine}"} | measure(
                    run.url + "/ArcFace/prediction?format=json", bodies, args.seconds
                )
            finally:
                stop_server(run)
        print(name, [round(r["qps"], 1) for r in res[name]["closed"]], flush=True)
    for name in PEERS:
        res[name] = previous.get(name) or peer(args.peers_python, name, bodies, args.seconds)
        print(name, [round(r["qps"], 1) for r in res[name]["closed"]], flush=True)
    res["machine"] = f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores"
    res["command"] = previous.get("command", "python bench/peers/run.py " + " ".join(sys.argv[1:]))
    if args.facepipe_only:
        res["facepipe_command"] = "python bench/peers/run.py " + " ".join(sys.argv[1:])
    (out / "peers-cpu.json").write_text(json.dumps(res, indent=2))
    report(res, out)


def report(res: dict, out: Path) -> None:
    names = [*FACEPIPE, *PEERS]

    def closed_cell(r: dict) -> str:
        return f"{r['qps']:.1f} / {r['p99_ms']:.0f}"

    def open_cell(r: dict) -> str:
        return f"{r['p99_ms']:.0f} ({r['qps']:.0f}/s)"

    def table(first: str, rows: list[str], mode: str, cell: Callable[[dict], str]) -> list[str]:
        """One markdown table: a row per level, a column per server, ``cell`` of each level's result."""
        head = [f"| {first} | " + " | ".join(names) + " |", "| --- " * (len(names) + 1) + "|"]
        body = [" | ".join(cell(res[n][mode][i]) for n in names) for i in range(len(rows))]
        return head + [f"| {row} | {cells} |" for row, cells in zip(rows, body, strict=True)]

    lines = [
        "# facepipe against the serving frameworks users would pick instead (CPU)",
        "",
        f"Machine: {res['machine']}; each server and the load generator (facepipe.tools.loadgen, one "
        f"process) on the same cores. Command: `{res['command']}`. The same MobileFaceNet ONNX, the "
        "same 700 LFW "
        "images (base64 in the seed's JSON), the same work per image (decode, resize to 112x112, "
        "normalise, inference, L2 norm, JSON numbers). facepipe runs OpenVINO as shipped (`engine: auto`, "
        "bench/results/cpu-runtimes.md: same embeddings, twice the speed); `facepipe-ort` is facepipe on "
        "onnxruntime, the peers' runtime. Versions: "
        + ", ".join(f"{k} {v}" for k, v in res["versions"].items())
        + ".",
        "",
        "Settings kept after tuning (best of the tried ones at concurrency 16): "
        + "; ".join(f"{n}: {res[n]['settings']}" for n in names)
        + ".",
        "",
        "## Throughput (requests/s) and p99 (ms), closed loop",
        "",
        *table("concurrency", [str(c) for c in LEVELS], "closed", closed_cell),
        "",
        "## p99 (ms) at equal offered load, open loop (Poisson)",
        "",
        *table("rate", [f"{r}/s" for r in RATES], "open", open_cell),
    ]

    def ahead(name: str, mode: str, key: str, rows: list[int]) -> bool:
        """``name`` at least as good as every peer at each row: more ``qps``, or less ``p99_ms``."""
        sign = 1 if key == "qps" else -1
        return all(
            sign * res[name][mode][i][key] >= max(sign * res[n][mode][i][key] for n in PEERS) for i in rows
        )

    from_4 = [i for i, c in enumerate(LEVELS) if c >= 4]
    lines.append("")
    for name in FACEPIPE:
        lines.append(
            f"{name} leads every peer in throughput at every concurrency ≥ 4: "
            f"**{'yes' if ahead(name, 'closed', 'qps', from_4) else 'no'}**; has the lowest p99 at every "
            f"offered rate: **{'yes' if ahead(name, 'open', 'p99_ms', list(range(len(RATES)))) else 'no'}**."
        )
    (out / "peers-cpu.md").write_text("\n".join(lines) + "\n")
    series = {
        n: {"levels": res[n]["closed"], "mode": "concurrency", "protocol": n, "machine": res["machine"]}
        for n in names
    }
    plots.compare_bench(series, out / "peers-cpu.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
